"""Who is asking (the kiosk or which remote client), how many failed PINs they may type, and
how much a request may send.

A PIN check costs argon2 time (2 passes over 19 MiB on a Pi), and a failed one for a real
person writes a journal row: a client that keeps guessing must be slowed down before it costs
the cabinet anything. :class:`LoginThrottle` counts failed logins per client in a sliding
window and refuses further attempts (``TOO_MANY_ATTEMPTS``) until the window has moved on,
without checking any PIN or writing anything.

The kiosk is not throttled at all (``LoginThrottle`` is only consulted for other clients): a
person at the screen types no faster than fingers allow, each account still locks after its
own failures, and blocking every login at the ward's cabinet for a minute would stop a nurse
who needs a drug now.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.datastructures import FormData, Headers, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.config import LOOPBACK_HOSTS, host_name
from controller.errors import AuthError, InputError

log = logging.getLogger(__name__)

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
#: Distinct refused host names written to the log (:meth:`TrustedHosts.tell_it`).
HOSTS_LOGGED = 16
#: Headers a proxy adds and a browser does not. On the proxy's own socket they say who the
#: client is; on loopback TCP, any one of them, even empty, means a proxy (or a process
#: posing as one) is at the wrong door, and the request is refused (:func:`identify`).
PROXY_HEADERS = frozenset({b"forwarded", b"x-forwarded-for", b"x-real-ip",
                           b"x-forwarded-proto", b"x-forwarded-host",
                           b"x-forwarded-port", b"via"})


@dataclass(frozen=True)
class Client:
    """Who sent a request, as :func:`identify` decides it."""

    #: ``"kiosk"``, ``"peer:ADDRESS"`` (a direct TCP client) or ``"fwd:ADDRESS"`` (through
    #: the site's proxy, on its socket): the key of its failed-login allowance.
    key: str
    #: The cabinet's own touchscreen browser.
    kiosk: bool
    #: The page travelled over HTTPS (to the proxy): the session cookie is then Secure.
    https: bool
    #: Why the request is refused before the app reads anything (:class:`ProxyDoor`), or
    #: None: a request whose sender cannot be told is answered by nothing else.
    refused: InputError | None = None


def _loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1, a dual-stack socket's loopback
    return ip.is_loopback


def _address(value: str) -> str:
    """The host of one forwarded address: ``1.2.3.4``, ``1.2.3.4:5678``, ``[v6]:port``,
    ``v6``, or a quoted ``Forwarded`` value of these."""
    value = value.strip().strip('"')
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":")[0]
    return value


def _ip(text: str) -> str | None:
    """``text`` as an IP address written one way (for one allowance per client), or None."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _forwarded_param(element: str, name: str) -> str:
    """One parameter (``for``, ``proto``) of one element of an RFC 7239 Forwarded header."""
    for pair in element.split(";"):
        key, _, value = pair.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return ""


def proxy_socket_request(scope: Scope) -> bool:
    """Whether the request came in on the proxy's Unix socket (``[server] proxy_socket``),
    the only socket the server listens on that is not TCP.

    uvicorn gives a Unix socket's request ``server = (path, None)`` (the socket's path, no
    port) and ``client = None``; a TCP request always has ``(address, port)``, which no
    header can change. Read from the listening end, not from a missing client, so that a
    server that one day gave a TCP client as None would not make it the proxy."""
    server = scope.get("server")
    return (isinstance(server, (tuple, list)) and len(server) == 2 and server[1] is None
            and isinstance(server[0], str) and server[0].startswith("/"))


def proxy_client_missing() -> InputError:
    return InputError(
        "the cabinet's proxy did not say which browser it forwards (X-Forwarded-For, "
        "X-Real-IP or Forwarded: for=, an IP address): ask IT to add it to the proxy's "
        "configuration",
        "le proxy de l'armoire n'a pas dit quel navigateur il relaie (X-Forwarded-For, "
        "X-Real-IP ou Forwarded: for=, une adresse IP) : demandez à l'informatique de "
        "l'ajouter à la configuration du proxy", code="PROXY_CLIENT_MISSING")


def proxy_not_on_socket() -> InputError:
    return InputError(
        "forwarding headers are only believed on the cabinet's proxy socket, not on its TCP "
        "port: ask IT to point the proxy at [server] proxy_socket",
        "les en-têtes de relais ne sont crus que sur le socket du proxy de l'armoire, pas "
        "sur son port TCP : demandez à l'informatique de diriger le proxy vers [server] "
        "proxy_socket", code="PROXY_NOT_ON_SOCKET")


def identify(scope: Scope) -> Client:
    """The one place that decides who sent a request, whether it is the kiosk, whether it
    came over HTTPS, and whether it is refused because that cannot be told; nothing else
    reads forwarding headers (uvicorn's own reading of them is off, see server.py).

    The site's TLS proxy has its own door, a Unix socket only its group may open
    (``[server] proxy_socket``, docs/deploy.md): forwarding headers are believed there and
    nowhere else. When loopback TCP was trusted as a whole, any process on the Pi could
    pass for the proxy (or, sending none, for the kiosk), and a proxy that forgot its
    headers turned every remote browser into the kiosk.

    * On the proxy's socket, the client is the last address the proxy recorded (the one it
      added itself: the last of every X-Forwarded-For line together, else X-Real-IP, else
      the last ``Forwarded: for=``), and HTTPS is what X-Forwarded-Proto (else ``proto=``)
      says. Never the kiosk. Without an IP address there, the request is refused
      (``PROXY_CLIENT_MISSING``): its clients would otherwise share one allowance, and a
      proxy that says nothing must be mended, not guessed at.
    * On loopback TCP, a request without any proxy header (:data:`PROXY_HEADERS`) is the
      kiosk: its Chromium talks to 127.0.0.1 directly and cannot add one. With one, it is
      refused (``PROXY_NOT_ON_SOCKET``), not taken for the kiosk with its headers ignored:
      that is a proxy still pointed at the TCP port (a site not yet moved to the socket),
      and ignoring the headers would hand every remote browser behind it the kiosk's
      cabinet session, names and unlimited PINs. A refusal is loud and safe.
    * From any other peer the client is that peer and the scheme the connection's own;
      headers are ignored, as anyone can write them.
    """
    if proxy_socket_request(scope):
        return _proxied(scope)
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    scheme = scope.get("scheme", "http")
    direct_https = scheme in ("https", "wss")
    if not _loopback(peer):
        return Client(f"peer:{peer}", kiosk=False, https=direct_https)
    if any(name.lower() in PROXY_HEADERS for name, _ in scope.get("headers", [])):
        return Client(f"peer:{peer}", kiosk=False, https=direct_https,
                      refused=proxy_not_on_socket())
    return Client(KIOSK, kiosk=True, https=direct_https)


def _proxied(scope: Scope) -> Client:
    """A request on the proxy's socket, read from the headers the proxy added."""
    values: dict[bytes, list[str]] = {}
    for name, value in scope.get("headers", []):
        if name.lower() in PROXY_HEADERS:
            values.setdefault(name.lower(), []).append(value.decode("latin-1"))
    forwarded = ",".join(values.get(b"forwarded", [])).split(",")
    candidates = [
        ",".join(values.get(b"x-forwarded-for", [])).split(",")[-1],
        (values.get(b"x-real-ip") or [""])[-1],
        _forwarded_param(forwarded[-1], "for"),
    ]
    address = next((_address(c) for c in candidates if c.strip()), "")
    proto = (values.get(b"x-forwarded-proto") or [_forwarded_param(forwarded[-1], "proto")])
    https = proto[-1].strip().lower() == "https"
    ip = _ip(address)
    if ip is None:
        return Client(f"fwd:{address or '?'}", kiosk=False, https=https,
                      refused=proxy_client_missing())
    return Client(f"fwd:{ip}", kiosk=False, https=https)


def client_key(request: Request) -> str:
    """The kiosk (``"kiosk"``), or a remote client's address as this cabinet can know it."""
    return identify(request.scope).key


def is_kiosk(request: Request) -> bool:
    """A request from the cabinet's own touchscreen browser (loopback, not via a proxy)."""
    return identify(request.scope).kiosk


class ProxiedScheme:
    """ASGI middleware: a page the site's proxy received over HTTPS is ``https`` to the app
    (``request.url``, the Secure cookie), as :func:`identify` decides; nothing else about
    the request is changed, so the socket and the peer stay what :func:`identify` reads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and identify(scope).https:
            scope = {**scope, "scheme": "https" if scope["type"] == "http" else "wss"}
        await self.app(scope, receive, send)


async def refuse(error: InputError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer 400 with ``error`` before the app reads or writes anything, as every refusal
    of the app is answered: its code, in French and English, as JSON when asked."""
    response: Response
    if "application/json" in Headers(scope=scope).get("accept", ""):
        response = JSONResponse(error.to_dict(), status_code=400)
    else:
        response = PlainTextResponse(f"{error.message_fr}\n{error.message_en}\n"
                                     f"[{error.code}]\n", status_code=400)
    await response(scope, receive, send)


class ProxyDoor:
    """ASGI middleware: a request :func:`identify` refuses (a proxy at the TCP port, or one
    on its socket that names no client) is answered 400 with its code before the app sees
    it, so no page, login or limit ever runs for a sender nobody can tell. Each code is
    written to the log once: the site's IT reads there what to change in the proxy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.logged: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = identify(scope).refused if scope["type"] in ("http", "websocket") else None
        if refused is None:
            await self.app(scope, receive, send)
            return
        if refused.code not in self.logged:
            self.logged.add(refused.code)
            log.warning("[%s] %s", refused.code, refused.message_en)
        await refuse(refused, scope, receive, send)


def requested_host(header: str | None) -> str | None:
    """The host part of a Host header (``name``, ``name:port``, ``[v6]``, ``[v6]:port``) as
    :func:`controller.config.host_name` writes it, or None when it is none of these."""
    if not header:
        return None
    if header.startswith("["):
        end = header.find("]")
        host, rest = (header[:end + 1], header[end + 1:]) if end > 0 else (header, "")
    else:
        host, colon, port = header.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and rest[1:].isdigit() and rest[1:].isascii()):
        return None
    return host_name(host)


def bad_host() -> InputError:
    return InputError("this address is not one of the cabinet's: ask IT to add the name to "
                      "[server] hosts of its configuration",
                      "cette adresse n'est pas celle de l'armoire : demandez à "
                      "l'informatique d'ajouter le nom à [server] hosts de sa configuration",
                      code="BAD_HOST")


class TrustedHosts:
    """ASGI middleware: a request is served only when its Host header names this cabinet,
    as loopback does (:data:`~controller.config.LOOPBACK_HOSTS`, the kiosk's) or as the
    configuration lists (``[server] hosts``); any other, or none, is refused with 400
    ``BAD_HOST`` before the app reads or writes anything.

    A server bound to the network is otherwise open to DNS rebinding: a page on another
    site points a name it controls at the cabinet's address, and its script then reads the
    cabinet's pages, same-origin, from any browser on the ward's network. Starlette's own
    TrustedHostMiddleware answers a bare "Invalid host header"; this one answers as every
    refusal of the app does: its code, in French and English, as JSON when asked."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(LOOPBACK_HOSTS) | frozenset(hosts)
        self.logged: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = requested_host(headers.get("host"))
        if host in self.hosts:
            await self.app(scope, receive, send)
            return
        self.tell_it(host)
        await refuse(bad_host(), scope, receive, send)

    def tell_it(self, host: str | None) -> None:
        """Say in the log, once per name, which host name was refused: after an upgrade to a
        version with the list, a pharmacy reaching the cabinet by a name not yet in
        ``[server] hosts`` sees only BAD_HOST pages, and IT reads the name to add here.
        Only names that parse as host names are written (a header may hold anything), and
        only the first :data:`HOSTS_LOGGED`, so a flood of names cannot fill the journal."""
        if host is None or host in self.logged or len(self.logged) >= HOSTS_LOGGED:
            return
        self.logged.add(host)
        log.warning("[BAD_HOST] refused a request for host %r: if the pharmacy reaches the "
                    "cabinet by this name, add it to [server] hosts and restart", host)


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
