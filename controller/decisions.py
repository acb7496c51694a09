"""What every pharmacist decision on a proposal (layout, par levels) shares.

A proposal is decided once: approving or rejecting it again is refused with one stable code,
and the pharmacist's note is journaled with the decision, bounded in length.
"""

from __future__ import annotations

from controller.errors import StateError

NOTE_MAX = 500


def ensure_undecided(proposal_id: int, status: str) -> None:
    if status != "proposed":
        raise StateError(f"proposal {proposal_id} is {status}",
                         f"la proposition {proposal_id} est déjà traitée",
                         code="PROPOSAL_DECIDED")


def note_detail(note: str) -> dict[str, str]:
    """The journal detail for a decision's note: nothing when there is none."""
    return {"note": note[:NOTE_MAX]} if note else {}
