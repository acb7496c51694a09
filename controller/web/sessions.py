"""Browser sessions: opaque random tokens, kept server-side, tied to the cabinet's session.

The browser only ever holds a random token (cookie: HttpOnly, SameSite=Strict); who it is and
what it may do live here, in memory, in the controller. There are two kinds of logged-in
browser session:

* ``cabinet``: made by a PIN login at the touchscreen, and only there (the app refuses the
  login, and ignores such a token, from any other client: ``CABINET_KIOSK_ONLY``). It *is*
  the Cabinet's one session: it stays valid only while the Cabinet's session is open for
  that same user, and there is at most one of them (a new cabinet login revokes any other).
  Another browser pointed at the cabinet's address has no such token, so it cannot act as
  the nurse who is logged in; one that copied it gets nothing from it away from the kiosk.
* ``pharmacy``: made by a pharmacist's (or admin's) login on the pharmacy pages, from any
  browser. It never touches the Cabinet's session (a nurse may be at the cabinet meanwhile)
  and expires after idleness: 15 minutes, or the cabinet's inactivity limit when it was
  opened on the kiosk itself.

Each session, logged-in or not, carries its own CSRF synchroniser token; every state-changing
request must echo it (form field or header) and is refused otherwise. Logging in replaces
the token and draws a new random CSRF secret (no session fixation).

An anonymous session (the lock screen, the pharmacy login page) needs no server-side state
to be checked: its CSRF token is an HMAC of its session token under a key drawn when the
process starts. Anonymous sessions are still kept (for the language, a message after a
refused login), few and bounded, the oldest going first; but when one has been pushed out by
a flood of visits, the next POST from its browser is still recognised from its cookie and
its token (:meth:`SessionStore.adopt`): nobody can starve the lock screen of its login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.auth import PharmacyLogoutReason, User
from controller.web.i18n import DEFAULT_LANG

COOKIE = "armoire_sid"
#: A pharmacy page left alone this long needs the PIN again.
PHARMACY_IDLE_S = 15 * 60
#: And never more than a working day.
PHARMACY_MAX_S = 10 * 3600
#: How long a badge presented at the lock screen waits for its holder's PIN.
BADGE_PIN_S = 60.0
#: Bound on sessions kept in memory (each is small; a flood of anonymous visits evicts itself).
MAX_SESSIONS = 500


#: What new_token makes: 32 random bytes, URL-safe base64 without padding.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class PendingBadge:
    """A badge presented at the lock screen, whose holder's PIN is awaited. Replaced or
    dropped whole, never changed field by field: a holder is never paired with another
    badge's hash or deadline."""

    #: Who it named (id, name).
    user_id: str
    name: str
    #: Its keyed hash (never its UID), checked again with the PIN: a badge revoked or
    #: replaced meanwhile opens nothing.
    badge_hash: str
    #: Until when (monotonic) her PIN may complete the login: BADGE_PIN_S, then the badge
    #: is needed again, so a name left on the screen does not wait for the next passer-by.
    until: float


@dataclass
class WebSession:
    token: str
    csrf: str = field(default_factory=new_token)
    lang: str = DEFAULT_LANG
    kind: str = "anonymous"           # anonymous | cabinet | pharmacy
    user: User | None = None
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    #: One-shot messages for the next page (an error after a redirect, "done"...).
    flash: list[dict[str, Any]] = field(default_factory=list)
    #: Form values kept across a refused POST so the person need not retype them. Server-side
    #: only: a patient id never goes into a URL.
    form: dict[str, str] = field(default_factory=dict)
    #: The re-layout task whose operation this (cabinet) session is running: when the
    #: operation is over, the task is finished and the person goes back to the task list.
    task: int | None = None
    #: The page a (cabinet) session goes back to once its operation is over: the restock
    #: page of a pocket whose expired units the technician removed first, so that she puts
    #: the delivery in without finding the pocket again.
    back_to: str | None = None
    #: A pharmacy session ends after this long without a request: PHARMACY_IDLE_S, or the
    #: cabinet's own inactivity limit when it was opened at the kiosk (anyone may walk up
    #: to the touchscreen after the pharmacist has left it).
    idle_s: float = PHARMACY_IDLE_S
    #: The badge presented at the lock screen, waiting for its holder's PIN.
    badge: PendingBadge | None = None

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(self.csrf, presented)


class SessionStore:
    def __init__(self, on_end: Callable[[str], None] | None = None,
                 on_expire: Callable[[WebSession, PharmacyLogoutReason], None] | None = None
                 ) -> None:
        self._sessions: OrderedDict[str, WebSession] = OrderedDict()
        #: Signs anonymous sessions' CSRF tokens; this process only (a restart needs a reload).
        self._key = secrets.token_bytes(32)
        #: Told the token of every session that ends, however it ends (logout, expiry,
        #: deactivation, eviction): the app cuts that session's live-update streams.
        self.on_end = on_end
        #: Told of a pharmacy session that timed out, once it is gone, and why
        #: (``inactivity`` or ``max_age``): the app journals its end, as a logout is.
        self.on_expire = on_expire

    def get(self, token: str | None) -> WebSession | None:
        """The session of a request: it is being used, so its idle time starts again."""
        session = self.peek(token)
        if session is not None:
            session.seen = time.monotonic()
            self._sessions.move_to_end(session.token)
        return session

    def peek(self, token: str | None) -> WebSession | None:
        """The session if it is still alive, without counting this as use (a live-update
        stream checking on its session must not keep an idle pharmacy page logged in)."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = time.monotonic()
        if session.kind == "pharmacy" and (now - session.seen > session.idle_s
                                           or now - session.created > PHARMACY_MAX_S):
            reason: PharmacyLogoutReason = ("inactivity" if now - session.seen > session.idle_s
                                            else "max_age")
            self.drop(token)  # first: whatever happens to the journal, the session is over
            if self.on_expire is not None:
                self.on_expire(session, reason)
            return None
        return session

    def sweep(self) -> None:
        """End the pharmacy sessions that have timed out, without waiting for their browser
        to come back (one closed or left on another page never does): their end is
        journaled when it happens, not days later or never."""
        for token in [t for t, s in self._sessions.items() if s.kind == "pharmacy"]:
            self.peek(token)

    def anonymous_csrf(self, token: str) -> str:
        digest = hmac.new(self._key, token.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def new(self, lang: str = DEFAULT_LANG, *, keep: bool = True) -> WebSession:
        """An anonymous session; ``keep=False``: not stored (yet), see :meth:`add`."""
        token = new_token()
        session = WebSession(token, csrf=self.anonymous_csrf(token), lang=lang)
        if keep:
            self.add(session)
        return session

    def adopt(self, token: str | None) -> WebSession | None:
        """An anonymous session for a token this store no longer holds (pushed out, or
        ended), not stored: its CSRF token is the one its pages were given if it was
        anonymous, so the lock screen's login still works after a flood of visits. A
        logged-in session's forms had a random CSRF secret and stay refused."""
        if token is None or not TOKEN_RE.match(token) or token in self._sessions:
            return None
        return WebSession(token, csrf=self.anonymous_csrf(token))

    def __contains__(self, token: str) -> bool:
        return token in self._sessions

    def add(self, session: WebSession) -> None:
        """Keep a session, pushing out the oldest anonymous ones beyond MAX_SESSIONS."""
        self._sessions[session.token] = session
        while len(self._sessions) > MAX_SESSIONS:
            # Anonymous visits go first; the cabinet's own session is never evicted.
            victim = next((t for t, s in self._sessions.items() if s.kind == "anonymous"
                           and t != session.token), None) or next(
                (t for t, s in self._sessions.items() if s.kind == "pharmacy"), None)
            if victim is None:
                break
            self.drop(victim)

    def login(self, old: WebSession | None, user: User, kind: str, *,
              idle_s: float = PHARMACY_IDLE_S) -> WebSession:
        """A fresh token and CSRF secret for a logged-in person (the old token dies);
        ``idle_s``: how long a pharmacy session may go without a request."""
        if old is not None:
            self.drop(old.token)
        if kind == "cabinet":
            self.end_cabinet()
        # A random CSRF secret (not the anonymous HMAC): nothing from before the login
        # carries over.
        session = WebSession(new_token(), lang=user.lang, kind=kind, user=user, idle_s=idle_s)
        self.add(session)
        return session

    def drop(self, token: str) -> None:
        """End one session; every other way a session ends comes through here."""
        if self._sessions.pop(token, None) is not None and self.on_end is not None:
            self.on_end(token)

    def cabinet(self) -> WebSession | None:
        """The browser session of whoever is logged in at the touchscreen, if anyone is."""
        return next((s for s in self._sessions.values() if s.kind == "cabinet"), None)

    def end_cabinet(self) -> None:
        """The Cabinet's session ended (logout, inactivity): its browser session ends too."""
        for token in [t for t, s in self._sessions.items() if s.kind == "cabinet"]:
            self.drop(token)

    def end_user(self, user_id: str, *, but_cabinet: bool = False,
                 but_token: str | None = None) -> None:
        """A deactivated or locked person loses every session they had; ``but_cabinet``:
        except the cabinet's, which ends when the cabinet locks (after her operation);
        ``but_token``: except that one (the page where she just changed her PIN)."""
        for token in [t for t, s in self._sessions.items()
                      if s.user is not None and s.user.id == user_id and t != but_token
                      and not (but_cabinet and s.kind == "cabinet")]:
            self.drop(token)

    def __len__(self) -> int:
        return len(self._sessions)
