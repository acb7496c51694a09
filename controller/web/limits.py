"""Who is asking (the kiosk or which remote client) and how many failed logins they may make.

A PIN check costs argon2 time (2 passes over 19 MiB on a Pi), and a failed one for a real
person writes a journal row: a client that keeps guessing must be slowed down before it costs
the cabinet anything. :class:`LoginThrottle` counts failed logins per client in a sliding
window and refuses further attempts (``TOO_MANY_ATTEMPTS``) until the window has moved on,
without checking any PIN or writing anything.

"Which client" is the TCP peer, except on loopback: the kiosk browser runs on the cabinet
itself, and so does the TLS reverse proxy a site may put in front for the pharmacy (see
docs/ui.md). A loopback request that carries a forwarding header came through such a proxy
and is keyed on the address the proxy recorded (the last one, the one it added itself); a
loopback request without one is the kiosk. The kiosk browser cannot add headers, so nobody
away from the cabinet can pass for the kiosk, and the kiosk's allowance is only spent by
people standing at it. Forwarding headers from a non-loopback peer are ignored (anyone can
write them).

The kiosk is not throttled at all (``LoginThrottle`` is only consulted for other clients): a
person at the screen types no faster than fingers allow, each account still locks after its
own failures, and blocking every login at the ward's cabinet for a minute would stop a nurse
who needs a drug now.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from starlette.requests import Request

from controller.errors import AuthError

#: Failed logins one client may make within WINDOW_S; more are refused unchecked.
MAX_FAILURES = 10
WINDOW_S = 60.0
#: Clients remembered at most (the oldest are forgotten first), so that a flood from many
#: addresses cannot grow memory without bound.
MAX_CLIENTS = 4096
KIOSK = "kiosk"
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def client_key(request: Request) -> str:
    """The kiosk (``"kiosk"``), or a remote client's address as this cabinet can know it."""
    peer = request.client.host if request.client is not None else ""
    if not _loopback(peer):
        return f"peer:{peer}"
    forwarded = request.headers.get("x-forwarded-for") or request.headers.get("x-real-ip")
    if forwarded:
        return f"fwd:{forwarded.split(',')[-1].strip()}"
    if request.headers.get("forwarded"):
        return f"fwd:{request.headers['forwarded'].split(',')[-1].strip()}"
    return KIOSK


def is_kiosk(request: Request) -> bool:
    """A request from the cabinet's own touchscreen browser (loopback, not via a proxy)."""
    return client_key(request) == KIOSK


def too_many() -> AuthError:
    return AuthError("too many failed logins from this screen: wait a minute and try again",
                     "trop d'échecs d'identification depuis cet écran : attendez une minute "
                     "et réessayez", code="TOO_MANY_ATTEMPTS")


class LoginThrottle:
    def __init__(self, *, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        cutoff = self.clock() - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, key: str) -> None:
        """Refuse (``TOO_MANY_ATTEMPTS``) a client that used up its failed logins."""
        if len(self._recent(key)) >= self.max_failures:
            raise too_many()

    def failed(self, key: str) -> None:
        times = self._recent(key)
        times.append(self.clock())
        self._failures[key] = times
        self._failures.move_to_end(key)
        while len(self._failures) > MAX_CLIENTS:
            self._failures.popitem(last=False)
