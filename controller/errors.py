"""One exception tree for the whole controller.

Every error a person or a tool can cause carries a stable ``code`` (recorded in the journal,
returned by the scenario runner and the web API) and a message in French and English. Codes
never change meaning once released; messages may be reworded.
"""

from __future__ import annotations

from typing import Any


class ArmoireError(Exception):
    """Base of every expected error: bad input, wrong state, refused by a rule, hardware fault."""

    code: str = "ERROR"
    #: Exit status for command-line tools: 2 means "your input was refused".
    exit_code: int = 2

    def __init__(self, message_en: str, message_fr: str | None = None, *,
                 code: str | None = None, **details: Any) -> None:
        super().__init__(message_en)
        if code is not None:
            self.code = code
        self.message_en = message_en
        self.message_fr = message_fr or message_en
        self.details = details

    def message(self, lang: str = "en") -> str:
        return self.message_fr if lang == "fr" else self.message_en

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "error": self.message_en, "error_fr": self.message_fr}


class InputError(ArmoireError):
    """Malformed or out-of-range input (file, field, argument)."""

    code = "BAD_INPUT"


class ConfigError(InputError):
    code = "BAD_CONFIG"


class NotFound(ArmoireError):
    code = "NOT_FOUND"


class AuthError(ArmoireError):
    code = "AUTH_FAILED"


class PermissionDenied(ArmoireError):
    code = "FORBIDDEN"


class StateError(ArmoireError):
    """A command that is not valid in the current state (of the session, a drawer…)."""

    code = "WRONG_STATE"


class RuleViolation(ArmoireError):
    """Refused by a dispensing rule (wrong scan, expired lot, not enough stock…)."""

    code = "REFUSED"


class HardwareError(ArmoireError):
    """A part did not do what it was told (jam, stuck switch, link down)."""

    code = "HARDWARE_FAULT"
    exit_code = 3


class ListenError(ArmoireError):
    """The server cannot open its TCP port (taken by another process): a restart may find
    it free, so not the exit status 2 of a refused configuration."""

    code = "LISTEN_FAILED"
    exit_code = 3


class StoreError(ArmoireError):
    code = "STORE_ERROR"
    exit_code = 3


class DatabaseUnreadable(StoreError):
    """A database file that cannot be read as the cabinet's (not SQLite, or damaged).

    Exit status 2, like a refused configuration: no restart mends the file, so systemd
    leaves the unit failed at once (``RestartPreventExitStatus=2``) for IT to restore a
    backup, instead of restarting the controller onto the same damage.
    """

    code = "DB_UNREADABLE"
    exit_code = 2
