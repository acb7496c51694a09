"""Changing PINs: a person's own, and a reset by a pharmacist or an admin.

A PIN is what puts a name in the journal beside every controlled drug taken, so only its
owner may know it. A PIN someone else chose (the one given when the account was created, or
a reset after a forgotten one) is marked ``must_change_pin``: the cabinet refuses every
action under it (``PIN_CHANGE_REQUIRED``, :meth:`Cabinet.acting` and the operations' checks)
until the person has chosen her own, here.

Changing one's own PIN asks for the current one, checked like a login (a wrong one counts
towards the lockout): a session left open at the cabinet must not let a passer-by take the
account over. Neither PIN ever reaches the journal or the logs.
"""

from __future__ import annotations

from controller.auth import User, check_pin_format
from controller.cabinet import Cabinet
from controller.errors import PermissionDenied, RuleViolation
from controller.store import JournalEntry


async def change_own_pin(cabinet: Cabinet, current_pin: str, new_pin: str, *,
                         actor: User | None = None) -> User:
    """The logged-in person (``actor`` for a pharmacy page, else the touchscreen's user)
    replaces her PIN; returns her. Journaled ``pin_changed``."""
    user = actor if actor is not None else cabinet.current_user()
    if actor is None:
        cabinet.touch()
    check_pin_format(new_pin)
    if new_pin == current_pin:
        raise RuleViolation("choose a PIN different from the current one",
                            "choisissez un code PIN différent de l'actuel",
                            code="PIN_UNCHANGED")
    # Counted like a login: wrong current PINs lock the account at the same limit.
    await cabinet.authenticate_async(user.id, current_pin)
    pin_hash = await cabinet.hash_pin(new_pin)
    with cabinet.store.transaction() as c:
        c.execute("UPDATE users SET pin_hash=?, must_change_pin=0 WHERE id=?",
                  (pin_hash, user.id))
        cabinet.store.append(JournalEntry("pin_changed", user=user.id))
    return user


async def reset_pin(cabinet: Cabinet, user_id: str, new_pin: str, *,
                    actor: User | None = None) -> None:
    """A person forgot her PIN: a pharmacist or an admin gives her a new one, which she
    must change at her next login. The reset also unlocks her account (the usual reason for
    a reset is a lockout after a forgotten PIN), and ends her session at the cabinet, whose
    PIN is no longer hers alone. Journaled ``pin_reset`` (who reset whose PIN)."""
    by = cabinet.acting(actor, "manage_users")
    if user_id == by.id:
        raise RuleViolation("change your own PIN with your current one",
                            "changez votre propre code PIN avec l'actuel", code="OWN_PIN")
    target = cabinet.user(user_id)
    if target["role"] == "admin" and by.role != "admin":
        raise PermissionDenied("only an admin may reset an admin's PIN",
                               "seul un administrateur peut réinitialiser le code d'un "
                               "administrateur", code="FORBIDDEN")
    check_pin_format(new_pin)
    pin_hash = await cabinet.hash_pin(new_pin)
    with cabinet.store.transaction() as c:
        c.execute("UPDATE users SET pin_hash=?, must_change_pin=1, locked=0, failed=0 "
                  "WHERE id=?", (pin_hash, user_id))
        cabinet.store.append(JournalEntry("pin_reset", user=by.id, detail={"id": user_id}))
        cabinet.close_lockout_alarm(user_id, by, f"{user_id}: PIN reset")
    cabinet.end_session_of(user_id, "pin_reset")


__all__ = ["change_own_pin", "reset_pin"]
