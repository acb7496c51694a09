"""Who is asking (the kiosk or which remote client), how many failed PINs they may type, and
how much a request may send.

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
people standing at it. A loopback request that shows any other sign of a proxy
(X-Forwarded-Proto, -Host, -Port, Via, or HTTPS) but names no client is not the kiosk
either: its clients share one allowance (``UNNAMED_PROXY_CLIENT``), so a proxy set up without
X-Forwarded-For does not hand every remote browser the kiosk's privileges. Forwarding headers
from a non-loopback peer are ignored (anyone can write them).

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
from urllib.parse import parse_qsl

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.types import Message

from controller.errors import AuthError

#: Failed logins one client may make within WINDOW_S; more are refused unchecked.
MAX_FAILURES = 10
WINDOW_S = 60.0
#: A PIN refused to a remote client is answered no sooner than this after it came in,
#: whether the id exists, is locked or is unknown (Web.checked_pin). Above the longest
#: honest check on a Pi: argon2 at the default cost and the journal's synchronous commit of
#: the failure, a few tenths of a second.
FAILED_PIN_ANSWER_S = 1.0
#: Clients remembered at most (the oldest are forgotten first), so that a flood from many
#: addresses cannot grow memory without bound.
MAX_CLIENTS = 4096
KIOSK = "kiosk"
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
#: Headers only a proxy adds. A loopback request with one of them came through a proxy even
#: when the proxy did not say for whom (no X-Forwarded-For): it is not the kiosk, whose
#: Chromium adds none of them.
PROXY_MARKERS = (*FORWARDING_HEADERS, "x-forwarded-proto", "x-forwarded-host",
                 "x-forwarded-port", "via")
#: The one key shared by the clients of a proxy that does not name them: one allowance of
#: failed logins for all of them, never the kiosk's unlimited one.
UNNAMED_PROXY_CLIENT = "fwd:?"


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
    if (request.scope.get("scheme", "http") != "http"
            or any(h in request.headers for h in PROXY_MARKERS)):
        # A proxy that says it forwards HTTPS (or that it is there) but not for whom: its
        # clients are remote browsers, which must not get the names, the badge step or the
        # kiosk's freedom from the failed-login limit.
        return UNNAMED_PROXY_CLIENT
    return KIOSK


def is_kiosk(request: Request) -> bool:
    """A request from the cabinet's own touchscreen browser (loopback, not via a proxy)."""
    return client_key(request) == KIOSK


def too_many() -> AuthError:
    """One message for a login PIN and a witness PIN, since both count in the same window."""
    return AuthError("too many wrong PINs from this screen: wait a minute and try again",
                     "trop de codes PIN erronés depuis cet écran : attendez une minute "
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


#: The largest request body read, in bytes. The cabinet's forms are a few hundred bytes (the
#: longest field is a 500-character note); without a bound, one POST could make the
#: controller hold megabytes in memory on the loop that drives the drawers.
MAX_BODY = 64 * 1024
#: At most this many fields in a form (the largest has about ten).
MAX_FIELDS = 100
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


class BodyTooLarge(Exception):
    """The request says, or turns out, to send more than MAX_BODY bytes."""


class BadForm(Exception):
    """The body is not the form it claims to be."""


async def bounded_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request's body, refused (:class:`BodyTooLarge`) as soon as it passes ``limit``:
    before reading anything when its Content-Length says so, else as it arrives (a chunked
    body has no length to check)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


async def read_form(request: Request) -> FormData:
    """A POST's form, bounded (:class:`BodyTooLarge`) and read strictly (:class:`BadForm`).

    A URL-encoded body is what browsers send: ASCII, with percent escapes of UTF-8. Starlette
    would turn a broken escape into U+FFFD and raw bytes into Latin-1, and a patient id or a
    lot nobody typed would reach the journal; here either is refused. A multipart body is
    parsed by Starlette from the bytes already read, so it is bounded too. Any other body
    that is not empty is not a form of this app.
    """
    body = await bounded_body(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == URLENCODED:
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, errors="strict",
                              max_num_fields=MAX_FIELDS)
        except ValueError:  # UnicodeDecodeError is one, and so are too many fields
            raise BadForm from None
        fields: list[tuple[str, str | UploadFile]] = list(pairs)
        return FormData(fields)
    if kind == MULTIPART:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            more, sent = not sent, True
            return {"type": "http.request", "body": body if more else b"", "more_body": False}

        return await Request(request.scope, replay).form(max_fields=MAX_FIELDS,
                                                         max_part_size=MAX_BODY)
    if body:
        raise BadForm
    return FormData()
