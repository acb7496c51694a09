"""People: roles, what each role may do, PINs hashed with argon2id, lockout.

Rules are enforced here, in the controller, for every caller (touchscreen, pharmacy pages,
scenario runner); the UI only hides what a role cannot do. A wrong PIN and an unknown user get
the same answer, so the PIN pad cannot be used to discover user ids. PINs never reach the
journal or the logs: only the fact of a failed attempt does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from controller.errors import AuthError, InputError, PermissionDenied

ROLES = ("nurse", "assistant", "technician", "pharmacist", "admin")

#: Why the cabinet's session ended, journaled in capitals as its ``logout`` row's code. A
#: closed set, so that each has its words on the journal page (``journal.code.*``); mypy
#: holds every caller of ``Cabinet.logout`` to it.
LogoutReason = Literal["user", "inactivity", "locked", "deactivated", "pin_changed",
                       "pin_reset"]
#: Why a pharmacy page's session ended (its Log out button, or a time-out), journaled as
#: ``PHARMACY_`` and the reason in capitals.
PharmacyLogoutReason = Literal["user", "inactivity", "max_age"]

#: action -> roles allowed. The only table of who may do what.
PERMISSIONS: dict[str, frozenset[str]] = {
    "withdraw": frozenset({"nurse", "assistant", "pharmacist"}),
    "return": frozenset({"nurse", "assistant", "pharmacist"}),
    "waste": frozenset({"nurse", "pharmacist"}),
    "witness": frozenset({"nurse", "pharmacist"}),
    "restock": frozenset({"nurse", "technician", "pharmacist"}),
    "remove": frozenset({"technician", "pharmacist"}),
    "move_stock": frozenset({"technician", "pharmacist"}),
    "count": frozenset({"nurse", "technician", "pharmacist"}),
    "acknowledge_alarm": frozenset({"nurse", "assistant", "technician", "pharmacist", "admin"}),
    "resolve_alarm": frozenset({"technician", "pharmacist"}),
    "resolve_discrepancy": frozenset({"pharmacist"}),
    "reset_drawer": frozenset({"technician", "pharmacist"}),
    "manage_users": frozenset({"pharmacist", "admin"}),
    # Badges are issued by IT (admins), as the hospital's staff cards are.
    "manage_badges": frozenset({"admin"}),
    "approve_layout": frozenset({"pharmacist"}),
    "approve_levels": frozenset({"pharmacist"}),
    "manage_formulary": frozenset({"pharmacist"}),
    "read_journal": frozenset({"pharmacist", "admin"}),
}

#: 6 to 12 ASCII digits, matched whole (fullmatch): ``$`` alone would let a trailing line
#: break through, hashed into a PIN that no pad can type.
PIN_RE = re.compile(r"[0-9]{6,12}")
#: argon2 checks run in worker threads, this many at a time (each takes the configured
#: memory, 19 MiB by default, and a core of the Pi's four).
PIN_CHECKS_AT_ONCE = 2
#: Failed logins with unknown ids are summed up in the journal at most this often.
UNKNOWN_USER_JOURNAL_S = 60.0


@dataclass(frozen=True)
class User:
    id: str
    name: str
    role: str
    lang: str = "fr"

    def can(self, action: str) -> bool:
        return self.role in PERMISSIONS[action]


def require(user: User | None, action: str) -> User:
    if user is None:
        raise AuthError("log in first", "identifiez-vous d'abord", code="NOT_LOGGED_IN")
    if not user.can(action):
        raise PermissionDenied(
            f"your role ({user.role}) may not {action.replace('_', ' ')}",
            f"votre rôle ({user.role}) ne permet pas cette action ({action})",
            code="FORBIDDEN")
    return user


def check_pin_format(pin: str) -> None:
    if not isinstance(pin, str) or not PIN_RE.fullmatch(pin):
        raise InputError("a PIN is 6 to 12 digits", "un code PIN compte 6 à 12 chiffres",
                         code="BAD_PIN_FORMAT")
    if len(set(pin)) == 1 or pin in "0123456789012" or pin in "9876543210987":
        raise InputError("this PIN is too easy to guess", "ce code PIN est trop facile à deviner",
                         code="WEAK_PIN")


#: A user id: 2 to 32 ASCII letters, digits, '.', '_' or '-', beginning and ending with a
#: letter or digit. Ids go into URLs (``/pharmacy/users/{id}/unlock``), the journal, CSV
#: exports and file names of reports: ``..``, a slash, a space or a control character
#: would be a path step, a forged line or a name nobody can type at the cabinet.
USER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}[A-Za-z0-9]")


def check_user_id(user_id: object) -> str:
    """The id, or ``BAD_USER_ID`` (fullmatch: no trailing newline slips through)."""
    if not isinstance(user_id, str) or not USER_ID_RE.fullmatch(user_id):
        raise InputError("a user id is 2 to 32 letters, digits, '.', '_' or '-', beginning "
                         "and ending with a letter or digit",
                         "un identifiant compte 2 à 32 lettres, chiffres, « . », « _ » ou "
                         "« - », et commence et finit par une lettre ou un chiffre",
                         code="BAD_USER_ID")
    return user_id


def check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"unknown role {role!r} (one of {', '.join(ROLES)})",
                         f"rôle inconnu {role!r}", code="BAD_ROLE")


class PinHasher:
    """argon2id; costs from the configuration, never below the configured floor."""

    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)

    def hash(self, pin: str) -> str:
        return self._ph.hash(pin)

    def verify(self, pin_hash: str, pin: str) -> bool:
        try:
            return bool(self._ph.verify(pin_hash, pin))
        except (VerificationError, InvalidHashError):
            return False

    def dummy_verify(self, pin: str) -> None:
        """Spend the same time for an unknown user as for a known one."""
        self.verify(self._dummy, pin)

    @property
    def _dummy(self) -> str:
        cached = getattr(self, "_dummy_hash", None)
        if cached is None:
            cached = self._ph.hash("000000-not-a-pin")
            self._dummy_hash = cached
        return cached
