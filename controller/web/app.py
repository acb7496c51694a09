"""The ASGI app of the cabinet: the touchscreen (kiosk) pages and the pharmacy pages.

It runs in the controller's own event loop and drives :class:`controller.cabinet.Cabinet`
directly: the rules (who may do what, stock, scans) live in the cabinet, never here; this
module only turns pages and forms into cabinet calls, and the cabinet's events into live
updates (server-sent events). Pages are rendered on the server (Jinja2, autoescaped) so the
JavaScript stays small: a PIN pad, a list filter, and the live-update stream.

Every request goes through :meth:`Web.endpoint`, which finds the browser session, checks the
CSRF token of every POST, checks the role, and turns a cabinet error into a message in the
person's language with its stable code (never a stack trace).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller import badge, formulary, people, register, relayout, replenishment
from controller.alarms import NOTE_NEEDED, RESOLVE_PERMISSION, translated_note
from controller.alarms import message as alarm_message
from controller.auth import ROLES, PharmacyLogoutReason, User, check_role
from controller.cabinet import Cabinet, Pocket
from controller.dates import (
    DAY_FIRST,
    AmbiguousDay,
    parse_typed_day,
    show_day,
    show_iso_day,
    show_time,
)
from controller.drawer import STATES as DRAWER_STATES
from controller.errors import ArmoireError, AuthError, InputError, PermissionDenied
from controller.localtime import day_after, day_start, local_moment, local_text
from controller.runtime import Runtime
from controller.stock.replay import sparkline_svg
from controller.tasks import keep
from controller.web.events import EventHub
from controller.web.i18n import (
    LANG_NAMES,
    LANGS,
    journal_code,
    journal_detail,
    journal_kind,
    norm_lang,
    translate,
    validity_labels,
)
from controller.web.limits import (
    FAILED_PIN_ANSWER_S,
    KIOSK,
    BadForm,
    BodyTooLarge,
    LoginThrottle,
    ProxiedScheme,
    ProxyDoor,
    TrustedHosts,
    client_key,
    is_kiosk,
    read_form,
)
from controller.web.sessions import (
    BADGE_PIN_S,
    COOKIE,
    PHARMACY_IDLE_S,
    PendingBadge,
    SessionStore,
    WebSession,
)
from controller.web.tallman import fold, look_alike, tall_man

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: Form fields never kept for re-display nor logged.
SECRET_FIELDS = frozenset({"pin", "witness_pin", "current_pin", "new_pin", "confirm_pin",
                           "csrf", "badge"})
#: The pages where a person whose PIN someone else chose sets her own (all others send her
#: there first).
OWN_PIN_PAGES = frozenset({"/pin", "/pharmacy/pin"})
#: What a person needs to finish an operation she started (count, close, live progress): a
#: PIN reset while her drawer is open must not leave the units taken out of the journal.
OPERATION_PAGES = frozenset({"/operation", "/operation/count", "/operation/close",
                             "/sim/close", "/events"})
JOURNAL_PAGE = 50
#: A refused form's values longer than this are not kept for re-display (memory).
REDISPLAY_MAX = 1000
#: How long the pharmacy's "compute a layout" button lets the engine search.
LAYOUT_SECONDS = 5.0
PHARMACY_ROLES = frozenset({"pharmacist", "admin"})

Handler = Callable[[Request, WebSession, FormData | None], Awaitable[Response]]
T = TypeVar("T")


class Refused(Exception):
    """A request refused before reaching the cabinet (CSRF, not logged in, wrong role)."""

    def __init__(self, status: int, code: str, key: str) -> None:
        super().__init__(code)
        self.status, self.code, self.key = status, code, key


def status_of(exc: ArmoireError) -> int:
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, AuthError):
        return 429 if exc.code == "TOO_MANY_ATTEMPTS" else 401
    return 409 if exc.exit_code == 2 else 503


class SecurityHeaders:
    """Headers every response gets: only this app's own scripts and styles may run (so an
    injected ``<script>`` would not even execute), no framing, no referrer, no caching of
    pages that show stock and patients."""

    HEADERS: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"content-security-policy",
         b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
         b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @classmethod
    def for_path(cls, static: bool) -> list[tuple[bytes, bytes]]:
        return cls.HEADERS if static else [*cls.HEADERS, (b"cache-control", b"no-store")]

    @classmethod
    def add_to(cls, response: Response) -> Response:
        """For the 500 page: Starlette answers an unhandled error from outside every
        middleware (ServerErrorMiddleware), so this one never sees that response."""
        for name, value in cls.for_path(static=False):
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.for_path(static)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


#: The operations the menu confirms when they are over; a re-layout's moves have their
#: own list, which says where the task stands.
CONFIRMED = ("withdraw", "return", "waste", "restock", "remove", "count")


class Web:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.cabinet: Cabinet = runtime.cabinet
        self.hub = EventHub()
        #: However a browser session ends, its live updates stop with it.
        self.sessions = SessionStore(on_end=self.hub.cut, on_expire=self.session_expired)
        self.throttle = LoginThrottle()
        #: A PIN refused to a remote client is answered this long after it came in.
        self.failed_pin_answer_s = FAILED_PIN_ANSWER_S
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                 autoescape=True)
        # Journal times are UTC; people read the ward's clock, its days written their way
        # (JJ/MM/AAAA in French, as they type them in the filters); files keep ISO.
        env.filters["local"] = jinja2.pass_context(
            lambda ctx, ts, seconds=False: self.shown_time(str(ts or ""), ctx.get("lang", ""),
                                                           seconds=seconds))
        env.filters["day"] = jinja2.pass_context(
            lambda ctx, text: show_iso_day(str(text or ""), ctx.get("lang", "")))
        # Figures with the reader's decimal mark (36,5 in French, 36.5 in English).
        env.filters["num"] = jinja2.pass_context(
            lambda ctx, x, digits=1: shown_number(float(x), ctx.get("lang", ""), digits))
        env.filters["percent"] = jinja2.pass_context(
            lambda ctx, x, digits=1: shown_percent(float(x), ctx.get("lang", ""), digits))
        self.templates = Jinja2Templates(env=env)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_sim: Any = None
        self._last_alarms: int | None = None
        self._tall: tuple[tuple[str, ...], dict[str, str]] | None = None

    # == life cycle =======================================================================
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.cabinet.listeners.append(self.on_cabinet_event)
        ticker = asyncio.create_task(self._tick())
        try:
            yield
        finally:
            self.hub.close()
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            if self.on_cabinet_event in self.cabinet.listeners:
                self.cabinet.listeners.remove(self.on_cabinet_event)

    def on_cabinet_event(self, message: dict[str, Any]) -> None:
        """Cabinet listener (on the loop): fan out, and end the browser session that was the
        cabinet's when the cabinet locks (logout, inactivity)."""
        self.hub.publish(message)
        if message.get("type") == "error" and (kiosk := self.sessions.cabinet()) is not None:
            # An error the cabinet met on its own (the drawer's Close button closed a drawer
            # that jammed part-open): no page's call awaits it, and the operation page leaves
            # for the menu as the operation ends. Kept for the kiosk's next page, as the
            # error of a page's own call is (see spawn).
            kiosk.flash.append({"kind": "error", "code": message.get("code"),
                                "text": message.get("fr" if kiosk.lang == "fr" else "en")})
        if message.get("type") == "operation" and message.get("step") == "done" \
                and message.get("kind") in CONFIRMED and (kiosk := self.sessions.cabinet()):
            # The operation page leaves for the menu as the operation ends: the menu (or
            # whatever page comes next) says once what was recorded, as a flash is shown
            # once, so the nurse knows her withdrawal went in.
            kiosk.flash.append(self.done_flash(message, kiosk.lang))
        if message.get("type") == "session" and message.get("state") == "locked":
            self.sessions.end_cabinet()  # which cuts its streams (SessionStore.on_end)

    def drug_words(self, drug: Mapping[str, Any]) -> str:
        """A drug as the touchscreen's lists name it (Tall Man name, strength, form, as
        ``drug_label`` draws it), for a sentence: the name alone did not tell the 500 mg
        from the 1 g."""
        name = self.tall_names().get(drug["name"], drug["name"])
        return " ".join(str(x) for x in (name, drug.get("strength"), drug.get("form")) if x)

    def count_gap(self, intent: int) -> bool:
        """Whether the count of operation ``intent`` differed from what the cabinet expected
        (its ``count_correction`` rows; the correction raised a discrepancy alarm for the
        pharmacy in the same transaction). The difference itself is never shown: the count
        is blind."""
        return bool(self.cabinet.store.query(
            "SELECT 1 FROM journal WHERE ref = ? AND kind = 'count_correction' LIMIT 1",
            (intent,)))

    def done_flash(self, op: Mapping[str, Any], lang: str) -> dict[str, Any]:
        """What the menu says once an operation is over: the operation, the quantity (the
        count, for a count), the drug and the pocket, and a difference reported, if any."""
        qty = op["counted"] if op["kind"] == "count" else op["qty"]
        done = translate(lang, f"done.{op['kind']}", qty=qty, pocket=op["pocket"],
                         drug=self.drug_words(self.cabinet.drug(op["drug"])))
        if not self.count_gap(op["intent"]):
            return {"kind": "ok", "text": done}
        return {"kind": "warn", "text": translate(lang, "done.gap", done=done)}

    def session_expired(self, session: WebSession, reason: PharmacyLogoutReason) -> None:
        """A pharmacy session timed out: journaled like its Log out button
        (``PHARMACY_INACTIVITY``, ``PHARMACY_MAX_AGE``), so the journal says when every
        pharmacy session ended. The session is already gone; a journal that cannot be
        written is logged, and the page that noticed the expiry is still served."""
        if session.user is None:
            return
        try:
            self.cabinet.pharmacy_logout(session.user, reason=reason)
        except Exception:
            log.exception("could not journal the end of a pharmacy session")

    async def _tick(self) -> None:
        """What the cabinet does not announce itself: the simulated drawers' motion and the
        number of open alarms, sent only when they change; and the pharmacy sessions that
        timed out, ended (and journaled) as they do."""
        n = 0
        while True:
            await asyncio.sleep(0.2)
            n += 1
            try:
                sim = self.sim_state()
                if sim is not None and sim != self._last_sim:
                    self._last_sim = sim
                    self.hub.publish({"type": "sim", "drawers": sim})
                if n % 25 == 0:  # every 5 s
                    self.sessions.sweep()
                if n % 5 == 0:
                    count = len(self.cabinet.alarms.list())
                    if count != self._last_alarms:
                        self._last_alarms = count
                        self.hub.publish({"type": "alarms", "open": count})
            except Exception:  # a failed poll must not end the live updates
                log.exception("live-update poll failed")

    def sim_state(self) -> dict[str, Any] | None:
        simulator = self.runtime.simulator
        if simulator is None:
            return None
        physics = simulator.physics.describe()
        return {d: {"position": round(float(v["position"]) * 100),
                    "lids_open": [f"{r}-{c}" for r, c in v["lids_open"]],
                    "state": self.cabinet.units[d].state if d in self.cabinet.units else "?"}
                for d, v in physics.items()}

    def spawn(self, coro: Awaitable[Any], owner: str) -> None:
        """Run a cabinet call that waits for a motor, without holding the HTTP request; its
        error, if any, reaches the page that asked through the live stream and a flash; any
        other exception is logged as ``TASK_FAILED``."""
        def shown(exc: BaseException) -> bool:
            if not isinstance(exc, ArmoireError):
                return False
            session = self.sessions.get(owner)
            if session is not None:
                session.flash.append(self.error_flash(exc, session.lang))
            self.hub.publish({"type": "error", "code": exc.code, "en": exc.message_en,
                              "fr": exc.message_fr}, only=owner)
            return True

        keep(self._tasks, asyncio.ensure_future(coro), "a cabinet call", log, on_error=shown)

    async def checked_pin(self, request: Request, attempt: Awaitable[T]) -> T:
        """Something that checks a typed PIN (a login, one's own PIN change, a witness's
        PIN), unless this client already failed too often (then no PIN is checked and
        nothing is written: ``TOO_MANY_ATTEMPTS``). A wrong id or PIN counts against the
        client; so does a locked account (someone is still guessing). Each PIN is checked by
        the cabinet, so it also counts against its owner's account, which locks."""
        key = client_key(request)
        if key == KIOSK:  # never lock the ward out of its own cabinet (see limits.py)
            return await attempt
        try:
            self.throttle.check(key)
        except AuthError:
            if asyncio.iscoroutine(attempt):
                attempt.close()  # never started: no PIN checked
            raise
        started = time.monotonic()
        try:
            return await attempt
        except AuthError as exc:
            if exc.code in ("AUTH_FAILED", "AUTH_LOCKED"):
                self.throttle.failed(key)
                # A real person's failure is written to the journal (a synchronous commit)
                # and a locked account is refused before any hash: a remote client timing
                # the answers would learn which ids exist. Every refusal leaves at the same
                # moment after the PIN came in, whoever the id (the kiosk has no need: the
                # one timing it is standing at it, and sees the names anyway).
                await asyncio.sleep(max(0.0, started + self.failed_pin_answer_s
                                        - time.monotonic()))
            raise

    # == sessions =========================================================================
    def resolve(self, request: Request) -> WebSession:
        """The request's session. A browser without one gets an anonymous session that is
        not stored: :meth:`keep` stores it if the page it gets is worth coming back to, so
        a flood of cookie-less requests (404s, refused posts) creates nothing."""
        token = request.cookies.get(COOKIE)
        session = self.sessions.get(token)
        if session is not None and session.kind == "cabinet" and not is_kiosk(request):
            # The cabinet's session opens drawers at the cabinet: it is honoured from its
            # own touchscreen only, whatever cookie a browser elsewhere (or a proxy on the
            # Pi) presents. Not ended: the nurse at the cabinet keeps it; the client is
            # named, not the token.
            log.warning("refused the cabinet's session to %s on %s: not the kiosk",
                        client_key(request), request.url.path)
            return self.sessions.new(keep=False)
        if session is not None and not self._still_valid(session):
            self.sessions.drop(session.token)
            return self.sessions.new(keep=False)  # an ended login: a new token
        if session is None:
            session = self.sessions.adopt(token) or self.sessions.new(keep=False)
        return session

    def keep(self, request: Request, response: Response, session: WebSession) -> None:
        """Store a new anonymous session when its page was served (a form to post back, a
        message to show next), and give the browser its cookie; never for an error page."""
        if (session.kind == "anonymous" and session.token not in self.sessions
                and response.status_code < 400):
            self.sessions.add(session)
        if session.token in self.sessions and request.cookies.get(COOKIE) != session.token:
            self.set_cookie(request, response, session)

    def alive(self, token: str) -> bool:
        """For a live-update stream: is its session still there and valid? Not a use of the
        session (its idle time keeps running); an invalid one is ended."""
        session = self.sessions.peek(token)
        if session is None:
            return False
        if not self._still_valid(session):
            self.sessions.drop(token)
            return False
        return True

    def _still_valid(self, session: WebSession) -> bool:
        user = session.user
        if session.kind == "cabinet":
            current = self.cabinet.session.user
            return (user is not None and current is not None and current.id == user.id
                    and self.cabinet.session.state != "locked")
        if session.kind == "pharmacy":
            assert user is not None
            rows = self.cabinet.store.query(
                "SELECT 1 FROM users WHERE id=? AND active=1 AND locked=0", (user.id,))
            return bool(rows)
        return True

    @staticmethod
    def set_cookie(request: Request, response: Response, session: WebSession) -> None:
        """The session cookie, ``Secure`` when the page came over HTTPS (the pharmacy behind
        the site's TLS proxy, which says so in X-Forwarded-Proto; see server.py): a token
        that was only ever sent encrypted must never be sent in clear. The kiosk talks plain
        HTTP over loopback, where a Secure cookie would not be kept at all."""
        response.set_cookie(COOKIE, session.token, httponly=True, samesite="strict",
                            path="/", secure=request.url.scheme == "https")

    # == rendering ========================================================================
    def shown_time(self, ts: str, lang: str, *, seconds: bool = False) -> str:
        """A journal time on the ward's clock, as a reader of ``lang`` writes it; text that
        is not a time as it is, never hidden."""
        when = local_moment(ts, self.cabinet.zone)
        return ts if when is None else show_time(when, lang, seconds=seconds)

    def render(self, request: Request, session: WebSession, name: str, status: int = 200,
               **context: Any) -> Response:
        lang = session.lang
        flashes, session.flash = session.flash, []
        form, session.form = session.form, {}

        def t(key: str, **values: Any) -> str:
            return translate(lang, key, **values)

        base = {
            "t": t, "lang": lang, "langs": LANGS, "session": session, "user": session.user,
            "csrf": session.csrf, "flashes": flashes, "form": form,
            "cabinet_name": self.cabinet.config.name, "sim": self.runtime.simulator is not None,
            "open_alarms": len(self.cabinet.alarms.list()) if session.user else 0,
            "tall": self.tall_names(), "live": session.kind in ("cabinet", "pharmacy"),
            "state_labels": json.dumps({st: t(f"state.{st}") for st in DRAWER_STATES},
                                       ensure_ascii=False),
            "validity": json.dumps(validity_labels(lang), ensure_ascii=False),
            "detail_words": lambda raw: journal_detail(lang, raw),
            "spark": spark,
            # The touchscreen has no keyboard: the pharmacy pages opened there (the lock
            # screen links to them) get the on-screen one too.
            "kiosk": is_kiosk(request),
        }
        base.update(context)
        return self.templates.TemplateResponse(request, name, base, status_code=status)

    def tall_names(self) -> dict[str, str]:
        """Display forms of the formulary's names; recomputed only when the names change
        (the pairwise comparison is quadratic in the size of the formulary)."""
        names = tuple(sorted(r["name"] for r in self.cabinet.store.query(
            "SELECT name FROM drugs")))
        if self._tall is None or self._tall[0] != names:
            self._tall = (names, tall_man(names))
        return self._tall[1]

    @staticmethod
    def error_flash(exc: ArmoireError, lang: str) -> dict[str, Any]:
        return {"kind": "error", "code": exc.code, "text": exc.message(lang)}

    def refuse(self, request: Request, session: WebSession, refused: Refused) -> Response:
        if wants_json(request):
            return JSONResponse({"code": refused.code,
                                 "error": translate("en", refused.key),
                                 "error_fr": translate("fr", refused.key)},
                                status_code=refused.status)
        return self.render(request, session, "error.html", status=refused.status,
                           code=refused.code, message=translate(session.lang, refused.key))

    # == the one way in ===================================================================
    def endpoint(self, handler: Handler, *, area: str | None = None, perm: str | None = None,
                 back: str | Callable[[Request], str] | None = None) -> Callable[
                     [Request], Awaitable[Response]]:
        """Wrap a page: session, CSRF on POST, area check, errors shown to the person.

        ``area`` is ``"cabinet"`` (the touchscreen's logged-in person), ``"pharmacy"``
        (pharmacist or admin, from the touchscreen or a pharmacy login) or ``None``.
        ``perm`` is the permission (controller.auth.PERMISSIONS) the page is for: the cabinet
        checks it again on every action, this only keeps people off pages they cannot use.
        ``back`` is where a refused POST returns, with the message and the typed values.
        """

        async def run(request: Request) -> Response:
            session = self.resolve(request)
            form: FormData | None = None
            try:
                try:
                    if request.method == "POST":
                        try:
                            form = await read_form(request)
                        except BodyTooLarge:
                            raise Refused(413, "BODY_TOO_LARGE", "error.body_too_large"
                                          ) from None
                        except (BadForm, HTTPException, MultiPartException):
                            # A body that is not the form it claims to be (multipart without
                            # its boundary, a broken escape, too many fields...): refused,
                            # nothing done.
                            raise Refused(400, "BAD_FORM", "error.bad_form") from None
                        presented = form.get("csrf") or request.headers.get("x-csrf-token")
                        if not isinstance(presented, str) or not session.csrf_ok(presented):
                            log.warning("refused a POST to %s: bad or missing CSRF token",
                                        request.url.path)
                            raise Refused(403, "CSRF_FAILED", "error.csrf")
                    self.check_area(request, session, area)
                    if perm is not None and (session.user is None
                                             or not session.user.can(perm)):
                        raise Refused(403, "FORBIDDEN", "error.forbidden")
                    if session.user is not None:
                        self.refuse_badges(request, session.user, form)
                    response = await handler(request, session, form)
                except ArmoireError as exc:
                    status = status_of(exc)
                    if (request.method == "POST" and back is not None and status != 403
                            and not wants_json(request)):
                        session.flash.append(self.error_flash(exc, session.lang))
                        # Kept to be shown again, within reason; the page may name more
                        # fields to forget for this request (request.state.forget).
                        forget = SECRET_FIELDS | getattr(request.state, "forget", frozenset())
                        if "secret_field" in exc.details:  # a badge read into that field
                            forget = forget | {exc.details["secret_field"]}
                        if form is not None:
                            session.form = {k: v for k, v in form.items()
                                            if k not in forget and isinstance(v, str)
                                            and len(v) <= REDISPLAY_MAX}
                        target = back(request) if callable(back) else back
                        response = RedirectResponse(target, status_code=303)
                    elif wants_json(request):
                        response = JSONResponse(exc.to_dict(), status_code=status)
                    else:
                        response = self.render(request, session, "error.html", status=status,
                                               code=exc.code, message=exc.message(session.lang))
            except Redirect as redirect:
                response = RedirectResponse(redirect.to, status_code=303)
            except Refused as refused:
                response = self.refuse(request, session, refused)
            except Exception:
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                response = self.render(request, session, "error.html", status=500,
                                       code="INTERNAL",
                                       message=translate(session.lang, "error.internal"))
            self.keep(request, response, getattr(request.state, "new_session", None) or session)
            return response

        return run

    def refuse_badges(self, request: Request, user: User, form: FormData | None) -> None:
        """The badge reader types wherever the focus is, so a logged-in person's badge may
        come in any field: a lot, a note, a witness, a name, a search box. Whatever a
        logged-in person sends may be stored, journaled or shown back, so every field of
        every request (form and query, each value of a field sent several times) is checked
        here, once, before any page's code sees it: a new field needs nothing to be
        covered. An enrolled badge's UID is refused (``BADGE_NOT_TEXT``, the patient field
        ``BADGE_NOT_PATIENT``) and every field that held one is dropped from the form shown
        again. Secret fields (PINs, the badge fields themselves) are never stored and are
        not looked at. Logins are not checked (no one is logged in yet): what they are
        sent is not stored, and an answer there would tell anyone which card numbers are
        enrolled. Each refusal tells ``user`` that a number is enrolled: it is journaled,
        and too many lock her account (:meth:`Cabinet.badge_refused`); not her own badge,
        the likeliest slip at the cabinet, which tells her nothing. A field the pages
        do not know is "this field" in the message and ``?`` in the journal: its name is
        the sender's text, and could be the badge itself."""
        typed = [(k, v) for k, v in request.query_params.multi_items()
                 if k not in SECRET_FIELDS]
        if form is not None:
            typed += [(k, v) for k, v in form.multi_items()
                      if k not in SECRET_FIELDS and isinstance(v, str)]
        holders = self.cabinet.badge_fields(typed)
        if holders:
            found = list(holders)
            request.state.forget = frozenset(found)
            others = [name for name, who in holders.items() if who - {user.id}]
            if others:
                known = others[0] in FIELD_NAMES
                self.cabinet.badge_refused(user.id, field=others[0] if known else "?")
            raise badge.typed_into(found[0], *FIELD_NAMES.get(found[0], UNNAMED_FIELD))

    def check_area(self, request: Request, session: WebSession, area: str | None) -> None:
        if area is None:
            return
        get = request.method == "GET"
        if area == "cabinet" and session.kind != "cabinet":
            if get:
                raise Redirect("/")
            raise Refused(403, "NOT_LOGGED_IN", "error.login_first")
        if area == "pharmacy":
            if session.user is None:
                if get:
                    raise Redirect("/pharmacy/login")
                raise Refused(403, "NOT_LOGGED_IN", "error.login_first")
            if session.user.role not in PHARMACY_ROLES:
                raise Refused(403, "FORBIDDEN", "error.forbidden")
        self.check_account(request, session)
        self.check_own_pin(request, session, area)

    def check_account(self, request: Request, session: WebSession) -> None:
        """A person deactivated or locked while her drawer is open keeps the cabinet's
        session until that operation is over (Cabinet.end_session_of: its count and close
        need her), and with it every page she could reach. Only her operation's pages stay
        open: the cabinet's session is not a way to keep managing users, resolving alarms
        or reading the journal after her account has ended. (A pharmacy session ends at
        once, in :meth:`_still_valid`.)"""
        user = session.user
        if session.kind != "cabinet" or user is None:
            return
        rows = self.cabinet.store.query("SELECT active, locked FROM users WHERE id=?",
                                        (user.id,))
        if rows and rows[0]["active"] and not rows[0]["locked"]:
            return
        code, key = (("USER_INACTIVE", "error.user_inactive")
                     if not rows or not rows[0]["active"]
                     else ("AUTH_LOCKED", "error.user_locked"))
        op = self.cabinet.session.op
        running = (op is not None and op.user.id == user.id
                   and op.step not in ("done", "aborted"))
        if running and request.url.path in OPERATION_PAGES:
            return
        if request.method == "GET":
            if running:
                raise Redirect("/operation")
            self.sessions.drop(session.token)  # the cabinet locks with it (end_session_of)
            raise Redirect("/")
        raise Refused(403, code, key)

    def held_at_pin(self, session: WebSession, path: str) -> bool:
        """True when this page is closed to the session's person until she chooses her own
        PIN (someone else chose the one she has). Her own running operation stays open."""
        user = session.user
        if user is None or path in OWN_PIN_PAGES or not self.cabinet.pin_change_required(
                user.id):
            return False
        op = self.cabinet.session.op
        return not (path in OPERATION_PAGES and session.kind == "cabinet" and op is not None
                    and op.user.id == user.id and op.step not in ("done", "aborted"))

    def check_own_pin(self, request: Request, session: WebSession, area: str | None) -> None:
        """Someone whose PIN another person chose is sent to choose her own; the cabinet
        refuses her actions anyway."""
        if not self.held_at_pin(session, request.url.path):
            return
        if request.method == "GET":
            raise Redirect("/pin" if area == "cabinet" or session.kind == "cabinet"
                           else "/pharmacy/pin")
        raise Refused(403, "PIN_CHANGE_REQUIRED", "error.pin_change")


class Redirect(Exception):
    """Not an error for the person: "go there" (a GET that needs a login)."""

    def __init__(self, to: str) -> None:
        super().__init__(to)
        self.to = to


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


#: Whole numbers from outside (form fields, URL parts, query parameters) are refused beyond
#: this size before they reach the cabinet or SQLite (which cannot even hold 2**63): no
#: quantity, count, pocket, page or record id of a cabinet comes near it.
MAX_NUMBER = 10**9
NUMBER_RE = re.compile(r"^[+-]?[0-9]{1,12}$")


#: What people call the fields they fill in, by form field, in English and French: an error
#: shown to a nurse names "quantité", not the form's ``qty``.
FIELD_NAMES: dict[str, tuple[str, str]] = {
    "patient": ("patient id", "identifiant patient"),
    "drug": ("drug", "médicament"),
    "lot": ("lot", "lot"),
    "expiry": ("expiry", "péremption"),
    "scan": ("scanned code", "code scanné"),
    "witness": ("witness", "témoin"),
    "note": ("note", "note"),
    "id": ("id", "identifiant"),
    "name": ("name", "nom"),
    "role": ("role", "rôle"),
    "q": ("name or id", "nom ou identifiant"),
    "lang": ("language", "langue"),
    "strength": ("strength", "dosage"),
    "form": ("form", "forme"),
    "gtin": ("GTIN", "GTIN"),
    "drawer": ("drawer", "tiroir"),
    "decision": ("decision", "décision"),
    "user": ("user", "utilisateur"),
    "user_id": ("user id", "identifiant"),
    "kind": ("kind", "type"),
    "edit": ("drug", "médicament"),
    "qty": ("quantity", "quantité"),
    "count": ("count", "compte"),
    "capacity": ("capacity", "capacité"),
    "row": ("row", "rangée"),
    "col": ("column", "colonne"),
    "page": ("page", "page"),
    "max_moves": ("most moves", "nombre maximal de déplacements"),
    "max_per_withdrawal": ("most per withdrawal", "maximum par prélèvement"),
    "from": ("from", "du"),
    "to": ("to", "au"),
}


#: How a refusal names a field the pages do not know (its name is the sender's text).
UNNAMED_FIELD = ("this field", "ce champ")


def field_names(name: str) -> tuple[str, str]:
    """A field's name for people, in English and French (the raw name if not listed)."""
    return FIELD_NAMES.get(name, (name, name))


def parse_int(text: str, name: str, *, minimum: int = -MAX_NUMBER) -> int:
    """A whole number between ``minimum`` and MAX_NUMBER, else ``BAD_NUMBER``."""
    text = text.strip()
    en, fr = field_names(name)
    if not NUMBER_RE.match(text):
        raise InputError(f"{en}: a whole number is expected",
                         f"{fr} : nombre entier attendu", code="BAD_NUMBER")
    value = int(text)
    if not minimum <= value <= MAX_NUMBER:
        raise InputError(f"{en}: {value} is out of range ({minimum} to {MAX_NUMBER})",
                         f"{fr} : {value} hors limites ({minimum} à {MAX_NUMBER})",
                         code="BAD_NUMBER")
    return value


def int_field(form: FormData | None, name: str, *, default: int | None = None) -> int:
    raw = form.get(name) if form is not None else None
    text = raw.strip() if isinstance(raw, str) else ""
    if not text and default is not None:
        return default
    return parse_int(text, name)


def path_int(request: Request, name: str) -> int:
    """A number in the URL (a pocket's row, a record's id): 0 or more, bounded."""
    return parse_int(str(request.path_params[name]), name, minimum=0)


def path_pocket(request: Request) -> tuple[str, int, int]:
    """The pocket a URL names (``/{drawer}/{row}/{col}``)."""
    return (str(request.path_params["drawer"]), path_int(request, "row"),
            path_int(request, "col"))


def spark(current: Any, proposed: Any) -> Markup:
    """A proposal's replay as inline SVG; what was stored is checked to be lists of numbers
    (sparkline_svg passes each through float), else nothing is drawn."""
    try:
        return Markup(sparkline_svg(list(current or []), list(proposed or [])))
    except (TypeError, ValueError):
        return Markup("")


def typed_day(text: str, name: str, lang: str) -> date | None:
    """A day typed into field ``name`` of a page in ``lang`` (empty: None), read as that
    language writes it (:func:`controller.dates.parse_typed_day`); anything else is refused
    with ``BAD_DATE`` naming the forms the page accepts, a slashed day on a page that does
    not say which comes first with ``AMBIGUOUS_DATE``, before anything is read or written."""
    if not text:
        return None
    en, fr = field_names(name)
    try:
        return parse_typed_day(text, lang)
    except AmbiguousDay:
        raise InputError(f"{en}: {text} reads day first or month first: write YYYY-MM-DD",
                         f"{fr} : {text} se lit jour d'abord ou mois d'abord : "
                         "écrivez AAAA-MM-JJ", code="AMBIGUOUS_DATE") from None
    except ValueError:
        forms = (("DD/MM/YYYY or YYYY-MM-DD", "JJ/MM/AAAA ou AAAA-MM-JJ") if lang in DAY_FIRST
                 else ("YYYY-MM-DD", "AAAA-MM-JJ"))
        raise InputError(f"{en}: a date is expected ({forms[0]})",
                         f"{fr} : date attendue ({forms[1]})", code="BAD_DATE") from None


#: The most each filter of the journal and the register holds: a user id, a drug's id or
#: part of its name, a kind, a day as typed (JJ/MM/AAAA, YYYY-MM-DD).
#: Up to this many pockets the formulary tab lists them all; a bigger cabinet's are shown
#: one drawer at a time (4,000 rows, each empty one with a list of every drug, were more
#: than a page can be used with).
POCKETS_ALL = 200

#: Up to this many pending par-level proposals the levels tab shows them all (one card and
#: one plot each); more are shown one drawer at a time.
LEVELS_ALL = 100

#: The alarms page's order, most urgent first: the journal's or the stock's truth in doubt,
#: a drawer out of service, expired units in a pocket, then a person locked out, then what
#: can wait for the next round (a lot expiring soon, low stock).
ALARM_URGENCY = ("journal_integrity", "discrepancy", "drawer_fault", "expired",
                 "auth_lockout", "expiry", "low_stock")

FILTER_LIMITS = {"kind": 40, "user": 32, "drug": 40, "patient": 40, "from": 10, "to": 10}


def query_filters(query: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The filters ``names`` of a query string, each checked as a form's text field is
    (:func:`checked_text`): longer than it holds is refused with ``FIELD_TOO_LONG``, never
    cut, since a cut id would filter on something nobody typed and a cut
    "2026-12-01 <anything>" would pass for a day."""
    return {k: checked_text(k, query.get(k, ""), FILTER_LIMITS[k]) for k in names}


def query_days(filters: dict[str, str], lang: str) -> tuple[date | None, date | None]:
    """The filters' optional ``from`` and ``to`` days (:func:`typed_day`). Each is put back
    into ``filters`` as the reader writes it, so the field shows the day in its own format
    whichever form was typed; :func:`kept_filters` gives the links the ISO form."""
    days = typed_day(filters["from"], "from", lang), typed_day(filters["to"], "to", lang)
    for key, day in zip(("from", "to"), days, strict=True):
        if day is not None:
            filters[key] = show_day(day, lang)
    return days


def kept_filters(filters: dict[str, str], days: tuple[date | None, date | None]
                 ) -> dict[str, str]:
    """The filters a link keeps (next page, CSV download), its days in YYYY-MM-DD: a link
    opened by a reader of another language reads the same days."""
    keep = {k: v for k, v in filters.items() if v}
    for key, day in zip(("from", "to"), days, strict=True):
        if day is not None:
            keep[key] = day.isoformat()
    return keep


def typed_expiry(form: FormData | None, lang: str) -> str | None:
    """The restock's expiry as the reader typed it (at most 10 characters, as a day is),
    handed to the cabinet in YYYY-MM-DD, the only form it stores and compares with a
    DataMatrix's; empty when a scan is to give it."""
    day = typed_day(str_field(form, "expiry", 10), "expiry", lang)
    return day.isoformat() if day is not None else None


def label_of(drawer: str, row: int, col: int) -> str:
    """A pocket as people name it (as :attr:`Pocket.label`): drawer, row, column from 1."""
    return f"{drawer}-{row + 1}-{col + 1}"


def optional_int(form: FormData | None, name: str) -> int | None:
    """An optional whole number ≥ 0 (an empty field is None)."""
    raw = form.get(name) if form is not None else None
    if not isinstance(raw, str) or not raw.strip():
        return None
    value = int_field(form, name)
    if value < 0:
        en, fr = field_names(name)
        raise InputError(f"{en}: must be 0 or more", f"{fr} : 0 ou plus",
                         code="BAD_NUMBER")
    return value


def str_field(form: FormData | None, name: str, limit: int = 80) -> str:
    """A text field, surrounding spaces removed; longer than ``limit`` is refused, never cut
    (a cut patient id or lot would go into the journal as something nobody typed, and a cut
    "2031-01-15 <anything>" would pass for a date)."""
    return checked_text(name, form.get(name) if form is not None else None, limit)


def drawer_choice(request: Request, counts: list[tuple[str, int]], limit: int
                  ) -> tuple[str, bool]:
    """Which drawer a long list (the formulary's pockets, the par-level proposals) shows:
    the one the query asks for (``?drawer=``, else ``UNKNOWN_DRAWER``), or, when the list is
    longer than ``limit``, the first one that has something, else all (""). Also whether
    the list was cut without being asked, which the page says."""
    asked = checked_text("drawer", request.query_params.get("drawer", ""), 32)
    if asked and asked not in {d for d, _ in counts}:
        raise InputError(f"no drawer {asked}", f"aucun tiroir {asked}", code="UNKNOWN_DRAWER")
    if asked:
        return asked, False
    if sum(n for _, n in counts) > limit:
        return next((d for d, n in counts if n), ""), True
    return "", False


def shown_number(x: float, lang: str, digits: int = 1) -> str:
    """A figure as the reader writes it: a French page read "36.5" where it writes 36,5."""
    text = f"{x:.{digits}f}"
    return text.replace(".", ",") if lang == "fr" else text


def shown_percent(share: float, lang: str, digits: int = 1) -> str:
    """A share (0 to 1) in percent, French typography ("100,0 %" with a narrow no-break
    space, which also keeps the sign on the figure's line) or English ("100.0%")."""
    figure = shown_number(100 * share, lang, digits)
    return f"{figure}\u202f%" if lang == "fr" else f"{figure}%"


def checked_text(name: str, raw: object, limit: int) -> str:
    """One value of text field ``name`` as :func:`str_field` takes it (a field sent several
    times has each of its values checked so)."""
    text = raw.strip() if isinstance(raw, str) else ""
    if len(text) > limit:
        en, fr = field_names(name)
        raise InputError(f"{en}: {limit} characters at most ({len(text)} given)",
                         f"{fr} : {limit} caractères au plus ({len(text)} saisis)",
                         code="FIELD_TOO_LONG")
    return text


# == the pages ==============================================================================
def create_app(runtime: Runtime) -> Starlette:
    web = Web(runtime)
    cab = web.cabinet

    def pocket_view(p: Pocket) -> dict[str, Any]:
        drug = cab.drug(p.drug) if p.drug else None
        lots = cab.store.pocket_stock(p.drawer, p.row, p.col)
        today = cab.today().isoformat()
        return {"pocket": p, "label": p.label, "drug": drug, "on_hand": sum(
            int(x["on_hand"]) for x in lots), "usable": cab.usable(p),
            "level": cab.low_level(p), "expired": any(
                x["expiry"] is not None and x["expiry"] < today for x in lots), "lots": lots}

    def drawers_view() -> list[dict[str, Any]]:
        drawers = cab.store.query("SELECT * FROM drawers ORDER BY position")
        pockets = cab.store.query(
            "SELECT drawer, row, col, drug, capacity, min_level, max_level FROM pockets")
        by = {(r["drawer"], r["row"], r["col"]): pocket_view(Pocket(**r)) for r in pockets}
        return [{"id": d["id"], "type": d["type"], "rows": d["rows"], "cols": d["cols"],
                 "state": cab.units[d["id"]].state if d["id"] in cab.units else "?",
                 "grid": [[by.get((d["id"], r, c)) for c in range(d["cols"])]
                          for r in range(d["rows"])]} for d in drawers]

    def drawer_view(drawer_id: str) -> dict[str, Any] | None:
        return next((d for d in drawers_view() if d["id"] == drawer_id), None)

    def drugs_by_id() -> dict[str, dict[str, Any]]:
        return {d["id"]: d for d in cab.store.query("SELECT * FROM drugs")}

    def drug_text(drugs: dict[str, dict[str, Any]], drug_id: str | None) -> str:
        """A drug as people read it: Tall Man name and strength (the id if unknown)."""
        d = drugs.get(drug_id or "")
        if d is None:
            return drug_id or ""
        name = web.tall_names().get(d["name"], d["name"])
        return f"{name} {d['strength']}" if d["strength"] else name

    def plan_view(placements: list[dict[str, Any]], conflicts: list[dict[str, Any]],
                  changed: set[str]) -> list[dict[str, Any]]:
        """Drawers drawn with a layout (today's or a proposal's) instead of their stock."""
        drugs = drugs_by_id()
        at = {(p["drawer"], p["row"], p["col"]): p["drug"] for p in placements}
        red = {label_of(c["drawer"], cell[0], cell[1]) for c in conflicts for cell in c["cells"]}
        return [{"id": d["id"], "type": d["type"], "cols": d["cols"], "grid": [[{
            "label": label_of(d["id"], r, c), "drug": drugs.get(at.get((d["id"], r, c), "")),
            "conflict": label_of(d["id"], r, c) in red,
            "changed": label_of(d["id"], r, c) in changed}
            for c in range(d["cols"])] for r in range(d["rows"])]}
            for d in cab.store.query("SELECT * FROM drawers ORDER BY position")]

    def pairs_view(pairs: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
        drugs = drugs_by_id()
        return [{"a": drug_text(drugs, p["a"]), "b": drug_text(drugs, p["b"]),
                 "pa": label_of(p["drawer"], *p["cells"][0]),
                 "pb": label_of(p["drawer"], *p["cells"][1]),
                 "similarity": shown_number(float(p["similarity"]), lang, 2)} for p in pairs]

    def move_line(drugs: dict[str, dict[str, Any]], m: dict[str, Any], lang: str) -> str:
        src, dst = m["from"], m["to"]
        values = {"drug": drug_text(drugs, m["drug"]),
                  "src": label_of(src["drawer"], src["row"], src["col"]) if src else "",
                  "dst": label_of(dst["drawer"], dst["row"], dst["col"]) if dst else ""}
        key = "move.both" if src and dst else ("move.out" if src else "move.in")
        return translate(lang, key, **values)

    def task_line(drugs: dict[str, dict[str, Any]], task: dict[str, Any], lang: str,
                  back: set[str] | None = None) -> str:
        """What the task's next half asks of the technician; ``back``: drugs that a later
        task puts back from the bench (a swap cycle), so they do not leave the cabinet."""
        src = (label_of(task["src_drawer"], task["src_row"], task["src_col"])
               if task["src_drawer"] is not None else "")
        dst = (label_of(task["dst_drawer"], task["dst_row"], task["dst_col"])
               if task["dst_drawer"] is not None else "")
        if relayout.next_step(cab, task) == "in":
            key = "relayout.step.in"
        else:
            key = ("relayout.step.out_then" if dst else "relayout.step.out_bench"
                   if task["drug"] in (back or set()) else "relayout.step.out_only")
        return translate(lang, key, drug=drug_text(drugs, task["drug"]), src=src, dst=dst)

    def tasks_view(lang: str) -> list[dict[str, Any]]:
        drugs = drugs_by_id()
        pending = relayout.tasks(cab)
        back = {t["drug"] for t in pending if t["src_drawer"] is None}
        view = [{**t, "text": task_line(drugs, t, lang, back),
                 "step": relayout.next_step(cab, t), "put_back": None, "put_back_done": None}
                for t in pending]
        if view:
            # A swap cycle's bench task whose units were put back: Start is refused.
            view[0]["put_back_done"] = relayout.put_back_into(cab, pending[0])
        if view and relayout.can_put_back(cab, pending[0]):
            # Its new drawer is out of service: Start would be refused; offer the way back.
            origin = relayout.origin_of(cab, pending[0])
            view[0]["put_back"] = {
                "src": label_of(*origin) if origin else "?",
                "drawer": pending[0]["dst_drawer"]}
        return view

    # -- kiosk: lock screen, login, menu ---------------------------------------------------
    async def lock(request: Request, s: WebSession, form: FormData | None) -> Response:
        if s.kind == "cabinet":
            return RedirectResponse("/menu", status_code=303)
        if not is_kiosk(request):
            # The PIN form here opens the cabinet's session, which only its own
            # touchscreen may (cabinet_at_the_cabinet): elsewhere it could not work, and
            # the pharmacy pages are what such a browser can use.
            if s.user is None:
                s.flash.append({"kind": "info", "text": translate(s.lang, "lock.kiosk_only")})
            return RedirectResponse("/pharmacy" if s.user is not None else "/pharmacy/login",
                                    status_code=303)
        # Names to touch only on the cabinet's own screen: anyone who can reach the server
        # from elsewhere would otherwise get the list of ids to guess PINs for (and who
        # works on the ward). They type their id.
        users = sorted(cab.store.query(  # alphabetical: Élodie among the E, not after Zoé
            "SELECT id, name, role FROM users WHERE active=1 AND locked=0"),
            key=lambda u: (fold(u["name"]), u["id"])) if is_kiosk(request) else []
        s.badge = None  # back here ("not me", or gone): the badge is asked again
        busy = cab.session.state != "locked"
        notice = request.query_params.get("logout")
        return web.render(request, s, "lock.html", users=users, busy=busy,
                          inactivity=notice == "inactivity", badge=is_kiosk(request))

    async def set_lang(request: Request, s: WebSession, form: FormData | None) -> Response:
        s.lang = norm_lang(str_field(form, "lang", 2))
        target = "/pharmacy/login" if str_field(form, "next") == "pharmacy" else "/"
        return RedirectResponse(target, status_code=303)

    def cabinet_at_the_cabinet(request: Request) -> None:
        """The cabinet's session (withdraw, return, waste, restock, count: drawers opening
        at the cabinet, rows journaled against patients) opens at the cabinet's own
        touchscreen only: anyone who reaches the server from elsewhere with a colleague's
        id and PIN must not take drugs out in her name. Refused before anything is looked
        up, whatever the id: no PIN checked, nothing counted, nothing journaled, the same
        answer for an id that exists and one that does not."""
        if not is_kiosk(request):
            raise Refused(403, "CABINET_KIOSK_ONLY", "error.cabinet_kiosk_only")

    async def login(request: Request, s: WebSession, form: FormData | None) -> Response:
        # The badge reader types wherever the focus is: a badge presented while the id
        # field had it sent its UID here, which a refused login must not show back. An id
        # of the cabinet's list of names comes back after a wrong PIN; nothing else does
        # (and elsewhere than the cabinet, nothing is even read).
        cabinet_at_the_cabinet(request)
        request.state.forget = frozenset({"user_id"})
        user_id = str_field(form, "user_id", 32)
        pin = form.get("pin") if form is not None else None
        if not user_id:
            raise InputError("choose your name or type your id",
                             "touchez votre nom ou saisissez votre identifiant",
                             code="NO_USER")
        if cab.store.query(
                "SELECT 1 FROM users WHERE id=? AND active=1 AND locked=0", (user_id,)):
            request.state.forget = frozenset()
        user = await web.checked_pin(request, cab.login(user_id, pin if isinstance(pin, str)
                                                          else ""))
        return logged_in(request, s, user)

    def logged_in(request: Request, s: WebSession, user: User, how: str = "") -> Response:
        fresh = web.sessions.login(s, user, "cabinet")
        request.state.new_session = fresh
        log.info("touchscreen login%s: %s (%s)", how, user.id, user.role)
        return RedirectResponse("/menu", status_code=303)

    def badge_at_the_cabinet(request: Request) -> None:
        """Badges are read at the cabinet's own touchscreen only: the reader is there, and
        anywhere else the badge step would let whoever reaches the server try card numbers
        (often sequential within a batch) and learn, from the PIN page's greeting, who
        holds each, which is the list of names the lock screen keeps off other browsers.
        Refused before any lookup: nothing counted, nothing journaled."""
        if not is_kiosk(request):
            raise Refused(403, "BADGE_KIOSK_ONLY", "error.badge_kiosk_only")

    async def login_badge(request: Request, s: WebSession, form: FormData | None
                          ) -> Response:
        """The badge reader typed a UID into the lock screen's badge field: who holds it.
        Her PIN is asked next (/login/pin), within BADGE_PIN_S. The UID itself is never
        logged, kept for re-display, nor put in a URL."""
        badge_at_the_cabinet(request)
        raw = form.get("badge") if form is not None else None
        if s.kind == "cabinet":
            return RedirectResponse("/menu", status_code=303)
        s.badge = None
        holder = await web.checked_pin(request, cab.identify_badge(
            raw if isinstance(raw, str) else ""))
        s.badge = PendingBadge(holder.user.id, holder.user.name, holder.badge_hash,
                               time.monotonic() + BADGE_PIN_S)
        return RedirectResponse("/login/pin", status_code=303)

    def badge_holder(s: WebSession) -> PendingBadge | None:
        if s.badge is not None and time.monotonic() > s.badge.until:
            s.badge = None
        return s.badge

    async def badge_pin_page(request: Request, s: WebSession, form: FormData | None
                             ) -> Response:
        badge_at_the_cabinet(request)
        holder = badge_holder(s)
        if s.kind == "cabinet":
            return RedirectResponse("/menu", status_code=303)
        if holder is None:
            return RedirectResponse("/", status_code=303)
        left = max(1, math.ceil(holder.until - time.monotonic()))
        return web.render(request, s, "badge_pin.html", holder_name=holder.name,
                          seconds_left=left)

    async def badge_pin_login(request: Request, s: WebSession, form: FormData | None
                              ) -> Response:
        """The PIN of the person the badge named: checked and counted exactly as a login by
        id (wrong PINs towards her lockout and this client's limit)."""
        badge_at_the_cabinet(request)
        holder = badge_holder(s)
        if holder is None or not cab.holds_badge(holder.user_id, holder.badge_hash):
            s.badge = None  # revoked, replaced or deactivated meanwhile: no PIN checked
            raise AuthError("present your badge again", "présentez à nouveau votre badge",
                            code="BADGE_AGAIN")
        pin = form.get("pin") if form is not None else None
        try:
            user = await web.checked_pin(request, cab.login(
                holder.user_id, pin if isinstance(pin, str) else "", by_badge=True))
        except AuthError as exc:
            if exc.code != "AUTH_FAILED":  # locked, too many tries: back to the badge
                s.badge = None
            raise
        s.badge = None
        return logged_in(request, s, user, " by badge")

    async def logout(request: Request, s: WebSession, form: FormData | None) -> Response:
        if s.kind == "pharmacy" and s.user is not None:
            cab.pharmacy_logout(s.user)
            web.sessions.drop(s.token)
            return RedirectResponse("/pharmacy/login", status_code=303)
        if s.kind == "cabinet":
            await cab.logout()
        return RedirectResponse("/", status_code=303)

    async def touch(request: Request, s: WebSession, form: FormData | None) -> Response:
        """The person is still there (typing, scrolling): restart the inactivity timer (the
        cabinet's, or the pharmacy session's: reaching here already counted as use)."""
        if s.user is None:
            raise Refused(403, "NOT_LOGGED_IN", "error.login_first")
        if s.kind == "cabinet":
            cab.touch()
        return Response(status_code=204)

    async def menu(request: Request, s: WebSession, form: FormData | None) -> Response:
        if cab.session.op is not None:
            return RedirectResponse("/operation", status_code=303)
        if s.task is not None:  # a re-layout task's operation is over: back to the list
            return RedirectResponse("/relayout", status_code=303)
        if s.back_to is not None:  # expired units removed first: back to the restock page
            page, s.back_to = s.back_to, None
            return RedirectResponse(page, status_code=303)
        pending = len(relayout.tasks(cab)) if s.user and s.user.can("move_stock") else 0
        out_of_service = sum(u.state != "closed" for u in cab.units.values()) \
            if s.user and s.user.can("reset_drawer") else 0
        return web.render(request, s, "menu.html", relayout_tasks=pending,
                          drawers_to_check=out_of_service)

    # -- kiosk: withdraw, return, waste ----------------------------------------------------
    def drug_list() -> list[dict[str, Any]]:
        tall = web.tall_names()
        # alphabetical whatever the accents (énoxaparine among the E, not after zolpidem)
        drugs = sorted(cab.formulary(), key=lambda d: (fold(d["name"]), d["strength"] or "",
                                                       d["id"]))
        for d in drugs:
            d["display"] = tall.get(d["name"], d["name"])
        return drugs

    def drug_page(kind: str) -> Handler:
        async def page(request: Request, s: WebSession, form: FormData | None) -> Response:
            if cab.session.op is not None:
                return RedirectResponse("/operation", status_code=303)
            drugs = drug_list()
            if kind == "withdraw" and s.user is not None:
                # only what she may take: a drug the cabinet refuses her is a dead end
                drugs = [d for d in drugs if cab.may_withdraw(s.user, d)]
            return web.render(request, s, "dispense.html", kind=kind, drugs=drugs,
                              patient_example=cab.settings.patient_id_example)
        return page

    async def start(s: WebSession, coro: Awaitable[Any]) -> Response:
        """Start an operation: wait until the cabinet has accepted it (checks passed, intent
        committed) or refused it; the drawer's travel goes on in the background."""
        # The operation already held (a double tap, a second tab) is not the one asked for:
        # only a new one means accepted, else a refusal (OPERATION_RUNNING) would be taken
        # for a start and never reach the form.
        before = cab.session.op
        task = asyncio.ensure_future(coro)
        for _ in range(500):
            if task.done() or (cab.session.op is not None and cab.session.op is not before):
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # a refusal raises here and is shown on the form
        else:
            web.spawn(task, s.token)
        return RedirectResponse("/operation", status_code=303)

    async def withdraw(request: Request, s: WebSession, form: FormData | None) -> Response:
        return await start(s, cab.withdraw(str_field(form, "drug"), int_field(form, "qty"),
                                           patient=str_field(form, "patient", 40) or None))

    async def return_(request: Request, s: WebSession, form: FormData | None) -> Response:
        return await start(s, cab.return_(str_field(form, "drug"), int_field(form, "qty"),
                                          patient=str_field(form, "patient", 40) or None))

    async def waste(request: Request, s: WebSession, form: FormData | None) -> Response:
        pin = form.get("witness_pin") if form is not None else None
        witness = str_field(form, "witness", 32) or None
        witness_pin = pin if isinstance(pin, str) and witness else None
        attempt = cab.waste(str_field(form, "drug"), int_field(form, "qty"), witness=witness,
                            witness_pin=witness_pin,
                            patient=str_field(form, "patient", 40) or None)
        # The witness's PIN is a PIN typed like a login's, through the same path (the
        # per-client limit, which the kiosk, the only client with this form, is spared).
        return await start(s, attempt if witness_pin is None
                           else web.checked_pin(request, attempt))

    # -- kiosk: the running operation ------------------------------------------------------
    async def operation(request: Request, s: WebSession, form: FormData | None) -> Response:
        op = cab.session.op
        if op is None:
            return RedirectResponse("/menu", status_code=303)
        # A removal names the lots whose boxes come out (those expired on the day it
        # began, as its outcome takes them), so the technician at the open drawer knows them.
        removing = []
        if op.kind == "remove" and op.counted is None:
            p = op.pocket
            removing = [x for x in cab.store.pocket_stock(p.drawer, p.row, p.col)
                        if x["expiry"] is not None and x["expiry"] < op.day]
        # A count that differed from the stock is said reported, without the number the
        # cabinet expected (the count is blind).
        gap = op.counted is not None and web.count_gap(op.intent)
        return web.render(request, s, "operation.html", op=op.describe(), drug=op.drug,
                          drawer=drawer_view(op.pocket.drawer), gap=gap,
                          sim_drawers=web.sim_state(), removing=removing)

    async def count(request: Request, s: WebSession, form: FormData | None) -> Response:
        await cab.confirm_count(int_field(form, "count"))
        return RedirectResponse("/operation" if cab.session.op else "/menu", status_code=303)

    async def close(request: Request, s: WebSession, form: FormData | None) -> Response:
        cab._current_op()  # refuse at once when nothing waits for a close
        web.spawn(cab.close_drawer(), s.token)
        return RedirectResponse("/operation", status_code=303)

    async def sim_close(request: Request, s: WebSession, form: FormData | None) -> Response:
        """The simulated drawer's physical Close button: the cabinet sees a button press."""
        simulator = runtime.simulator
        drawer = str_field(form, "drawer", 8)
        if simulator is None or drawer not in simulator.physics.drawers:
            raise InputError("no such simulated drawer", "tiroir simulé inconnu",
                             code="NO_SIM_DRAWER")
        simulator.physics.press_close_button(drawer)
        return RedirectResponse("/operation" if cab.session.op else "/menu", status_code=303)

    # -- kiosk: technician -----------------------------------------------------------------
    async def restock_list(request: Request, s: WebSession, form: FormData | None) -> Response:
        views = [pocket_view(cab.pocket(r["drawer"], r["row"], r["col"]))
                 for r in cab.stock_report()]
        drugs = drugs_by_id()
        pick = [{**p, "label": p["pocket"], "drug_id": p["drug"], "drug": drugs.get(p["drug"])}
                for p in replenishment.pick_list(cab)]
        return web.render(request, s, "restock_list.html", pick=pick, views=views)

    def target(request: Request) -> Pocket:
        return cab.pocket(*path_pocket(request))

    async def restock_page(request: Request, s: WebSession, form: FormData | None) -> Response:
        view = pocket_view(target(request))
        p: Pocket = view["pocket"]
        # What the pick list says to bring (usable units only): expired units still in the
        # pocket are shown apart, to be removed first, not subtracted from the delivery.
        suggest = max(1, (p.max_level or p.capacity) - view["usable"])
        return web.render(request, s, "restock.html", view=view, suggest=suggest,
                          expired_units=view["on_hand"] - view["usable"],
                          drawer=drawer_view(p.drawer))

    async def restock(request: Request, s: WebSession, form: FormData | None) -> Response:
        p = target(request)
        return await start(s, cab.restock(
            None, str_field(form, "scan", 200), int_field(form, "qty"),
            lot=str_field(form, "lot", 40) or None, expiry=typed_expiry(form, s.lang),
            pocket=(p.drawer, p.row, p.col)))

    async def restock_remove_first(request: Request, s: WebSession, form: FormData | None
                                   ) -> Response:
        """From a pocket's restock page: remove its expired units (the ordinary journaled
        removal, lot by lot), then come back to the page to put the delivery in. The
        technician at the pocket with the delivery in hand should not have to leave for
        the expired-lots list, find the pocket there, and find it again on the pick list."""
        p = target(request)
        s.back_to = f"/restock/{p.drawer}/{p.row}/{p.col}"
        try:
            return await start(s, cab.remove_expired(p.drawer, p.row, p.col))
        except BaseException:
            s.back_to = None
            raise

    async def remove_list(request: Request, s: WebSession, form: FormData | None) -> Response:
        """The expired lots, pocket by pocket: one button per pocket, naming its lots.

        A removal opens the pocket's drawer once and takes out every expired box of the
        pocket (``remove_expired``), so a button per lot, each removing them all, said one
        thing and did another."""
        today = cab.today().isoformat()
        pockets: dict[tuple[str, int, int], dict[str, Any]] = {}
        for lot in cab.store.query(
                "SELECT s.*, d.name, d.strength FROM stock s JOIN drugs d ON d.id = s.drug "
                "JOIN drawers w ON w.id = s.drawer "
                "WHERE s.on_hand > 0 AND s.expiry IS NOT NULL AND s.expiry < ? "
                "ORDER BY w.position, s.row, s.col, s.expiry, s.lot", (today,)):
            key = (lot["drawer"], lot["row"], lot["col"])
            p = pockets.setdefault(key, {
                "drawer": lot["drawer"], "row": lot["row"], "col": lot["col"],
                "label": f"{lot['drawer']}-{lot['row'] + 1}-{lot['col'] + 1}",
                "name": lot["name"], "strength": lot["strength"], "lots": [], "units": 0})
            p["lots"].append(lot)
            p["units"] += int(lot["on_hand"])
        return web.render(request, s, "remove.html", pockets=list(pockets.values()))

    async def remove(request: Request, s: WebSession, form: FormData | None) -> Response:
        """The lots the button listed come along, so that the cabinet removes those or
        nothing (``EXPIRED_LOTS_CHANGED``); a request naming none removes every expired
        lot of the pocket, as the restock page's "remove first" does."""
        named = form.getlist("lot") if form is not None else []
        lots = [checked_text("lot", x, 40) for x in named]
        return await start(s, cab.remove_expired(str_field(form, "drawer", 8),
                                                 int_field(form, "row"), int_field(form, "col"),
                                                 lots=lots or None))

    # -- kiosk: blind count of a pocket; drawers out of service --------------------------
    async def count_list(request: Request, s: WebSession, form: FormData | None) -> Response:
        """Every stocked pocket, those an alarm asks to count first. Blind: the page never
        shows how many the cabinet expects, so the count is what the person sees."""
        if cab.session.op is not None:
            return RedirectResponse("/operation", status_code=303)
        flagged = {(a["drawer"], a["row"], a["col"]) for a in cab.alarms.list()
                   if a["kind"] in ("discrepancy", "expired") and a["drawer"] is not None}
        tall = web.tall_names()
        pockets = [{"drawer": p["drawer"], "row": p["row"], "col": p["col"],
                    "name": tall.get(p["name"], p["name"]), "strength": p["strength"] or "",
                    "flagged": (p["drawer"], p["row"], p["col"]) in flagged}
                   for p in cab.store.query(
                       "SELECT p.drawer, p.row, p.col, d.name, d.strength FROM pockets p "
                       "JOIN drugs d ON d.id = p.drug JOIN drawers w ON w.id = p.drawer "
                       "ORDER BY w.position, p.row, p.col")]
        pockets.sort(key=lambda p: not p["flagged"])  # stable: flagged first, in cabinet order
        return web.render(request, s, "count.html", pockets=pockets)

    async def count_pocket(request: Request, s: WebSession, form: FormData | None
                           ) -> Response:
        return await start(s, cab.count(str_field(form, "drawer", 8), int_field(form, "row"),
                                        int_field(form, "col")))

    def drawer_states() -> list[dict[str, Any]]:
        return [{"id": d, "state": u.state, "resettable": u.state != "closed"}
                for d, u in cab.units.items()]

    async def drawers_page(request: Request, s: WebSession, form: FormData | None
                           ) -> Response:
        return web.render(request, s, "drawers.html", drawers=drawer_states())

    async def drawer_reset(request: Request, s: WebSession, form: FormData | None
                           ) -> Response:
        """The technician has checked the drawer (nothing in the way, switches seated): the
        drawer is driven closed. The page waits for the end of the travel, seconds at most."""
        drawer = str_field(form, "drawer", 8)
        state = await cab.reset_drawer(drawer)
        ok = state == "closed"
        s.flash.append({"kind": "ok" if ok else "error", "text": translate(
            s.lang, "drawers.reset_done" if ok else "drawers.reset_failed", drawer=drawer,
            state=translate(s.lang, f"state.{state}"))})
        return RedirectResponse("/drawers", status_code=303)

    # -- kiosk: re-layout tasks (technician, pharmacist) ---------------------------------
    async def relayout_list(request: Request, s: WebSession, form: FormData | None
                            ) -> Response:
        """The task list. Changes nothing: back here after a task's operation, the page is
        only the form that records it (:func:`relayout_finish`), which the kiosk's script
        posts at once, so that a reload, a prefetch or a link cannot record anything."""
        if cab.session.op is not None:
            return RedirectResponse("/operation", status_code=303)
        if s.task is not None:
            return web.render(request, s, "relayout.html", tasks=[], finishing=True)
        return web.render(request, s, "relayout.html", tasks=tasks_view(s.lang))

    async def relayout_finish(request: Request, s: WebSession, form: FormData | None
                              ) -> Response:
        """The task whose operation this session ran is over: record it if it is complete
        (``relayout.finish_task``: the pocket now holds its drug), else say what is left.
        The session's own task only, once: a second post finds none and changes nothing."""
        if cab.session.op is not None:
            return RedirectResponse("/operation", status_code=303)
        if s.task is not None:
            task_id, s.task = s.task, None
            if relayout.finish_task(cab, task_id):
                s.flash.append({"kind": "ok", "text": translate(s.lang, "relayout.task_done")})
            elif any(t["id"] == task_id for t in relayout.tasks(cab)):
                s.flash.append({"kind": "info",
                                "text": translate(s.lang, "relayout.half_done")})
        return RedirectResponse("/relayout", status_code=303)

    async def relayout_put_back(request: Request, s: WebSession, form: FormData | None
                                ) -> Response:
        """The units of a task whose new drawer is out of service go back into their old
        pocket (``relayout.put_back``); the task is not finished by it, so the person comes
        back to the list, not through ``finish_task``."""
        s.back_to = "/relayout"
        try:
            return await start(s, relayout.put_back(cab, path_int(request, "task")))
        except BaseException:
            s.back_to = None
            raise

    async def relayout_start(request: Request, s: WebSession, form: FormData | None
                             ) -> Response:
        task_id = path_int(request, "task")
        s.task = task_id
        try:
            return await start(s, relayout.start_task(cab, task_id))
        except BaseException:
            s.task = None
            raise

    # -- live updates ----------------------------------------------------------------------
    async def events(request: Request, s: WebSession, form: FormData | None) -> Response:
        if s.user is None:
            raise Refused(403, "NOT_LOGGED_IN", "error.login_first")
        # The PIN page still follows a logout or the cabinet's lock, and sees nothing else.
        restricted = web.held_at_pin(s, request.url.path)
        client = web.hub.subscribe(s.token, sessions_only=restricted)
        # What happened before the page connected: the running operation, drawers, alarms.
        op = cab.session.op
        if op is not None and s.kind == "cabinet" and not restricted:
            client.queue.put_nowait({"type": "operation", **op.describe()})
        sim = web.sim_state()
        if sim is not None and not restricted:
            client.queue.put_nowait({"type": "sim", "drawers": sim})
        if not restricted:
            client.queue.put_nowait({"type": "alarms", "open": len(cab.alarms.list())})
        token = s.token
        return StreamingResponse(web.hub.stream(client, lambda: web.alive(token)),
                                 media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    # -- pharmacy --------------------------------------------------------------------------
    async def ph_login_page(request: Request, s: WebSession, form: FormData | None
                            ) -> Response:
        if s.user is not None and s.user.role in PHARMACY_ROLES:
            return RedirectResponse("/pharmacy", status_code=303)
        return web.render(request, s, "ph_login.html")

    async def ph_login(request: Request, s: WebSession, form: FormData | None) -> Response:
        pin = form.get("pin") if form is not None else None
        user = await web.checked_pin(request, cab.pharmacy_login(
            str_field(form, "user_id", 32), pin if isinstance(pin, str) else ""))
        # On the touchscreen, the cabinet's inactivity rule holds for pharmacists too: a
        # pharmacy page left open there must not let the next passer-by manage users.
        idle = cab.settings.inactivity_s if is_kiosk(request) else PHARMACY_IDLE_S
        request.state.new_session = web.sessions.login(s, user, "pharmacy", idle_s=idle)
        log.info("pharmacy login: %s (%s)", user.id, user.role)
        return RedirectResponse("/pharmacy", status_code=303)

    def actor(s: WebSession) -> User:
        assert s.user is not None
        return s.user

    async def ph_alarms(request: Request, s: WebSession, form: FormData | None) -> Response:
        # The urgent first (a count discrepancy raised after a hundred low stocks was at the
        # bottom), each kind counted, and the list narrowed to one kind on request.
        everything = sorted(cab.alarms.list(),
                            key=lambda a: (ALARM_URGENCY.index(a["kind"])
                                           if a["kind"] in ALARM_URGENCY
                                           else len(ALARM_URGENCY), a["id"]))
        counts = Counter(str(a["kind"]) for a in everything)
        kind = checked_text("kind", request.query_params.get("kind", ""), 40)
        if kind and kind not in ALARM_URGENCY:
            raise InputError(f"no such kind of alarm: {kind}",
                             f"ce type d'alarme n'existe pas : {kind}", code="BAD_KIND")
        alarms = [a for a in everything if not kind or a["kind"] == kind]
        resolved = cab.store.query(
            "SELECT * FROM alarms WHERE state='resolved' ORDER BY updated_ts DESC LIMIT 20")
        # What each was closed with (the journal keeps it): "what was found" about a gap
        # was to be looked for in the journal, the alarms page showing no note.
        notes = {int(r["alarm"]): str(r["note"]) for r in cab.store.query(
            "SELECT json_extract(detail, '$.alarm') AS alarm, json_extract(detail, '$.note') "
            "AS note FROM journal WHERE kind='alarm_resolved' AND json_extract(detail, "
            f"'$.note') IS NOT NULL AND json_extract(detail, '$.alarm') IN "
            f"({', '.join('?' for _ in resolved)})", [a["id"] for a in resolved])
            if r["alarm"] is not None}
        resolved = [{**a, "note": translated_note(notes.get(int(a["id"]), ""), s.lang)}
                    for a in resolved]
        drugs = drugs_by_id()

        def text(alarm: dict[str, Any]) -> str:
            return alarm_message(alarm, s.lang, drug_text(drugs, alarm["drug"]) or None)

        def may_resolve(alarm: dict[str, Any]) -> bool:
            """Resolve is offered only where the cabinet would accept it (an admin resolves
            a lockout, not a discrepancy): elsewhere the button led to an error page."""
            permission = RESOLVE_PERMISSION.get(alarm["kind"])
            return permission is not None and actor(s).can(permission)

        return web.render(request, s, "ph_alarms.html", alarms=alarms, resolved=resolved,
                          alarm_text=text, may_resolve=may_resolve, kind=kind,
                          note_needed=NOTE_NEEDED,
                          kinds=[(k, counts[k]) for k in ALARM_URGENCY if counts[k]],
                          total=len(everything))

    def alarm_id(request: Request) -> int:
        return path_int(request, "alarm")

    def alarm_done(s: WebSession, key: str, alarm: int) -> None:
        """Which alarm was just closed or acknowledged, by number and kind: after a morning
        of them, "Done." did not say which had worked, and an acknowledgement said
        nothing at all."""
        kind = str(cab.alarms.get(alarm)["kind"])
        s.flash.append({"kind": "ok", "text": translate(
            s.lang, key, id=alarm, kind=translate(s.lang, f"alarm.{kind}"))})

    def alarms_back(request: Request) -> str:
        """The alarms list the form was sent from: a morning of low stocks is worked
        through with the list narrowed to them, and coming back to every kind after each
        one meant choosing the filter again each time. Only a kind the page knows is
        carried into the address; once none of it is left open, every kind again."""
        kind = request.query_params.get("kind", "")
        if kind in ALARM_URGENCY and cab.alarms.open_of(kind):
            return f"/pharmacy?kind={kind}"
        return "/pharmacy"

    async def ph_resolve(request: Request, s: WebSession, form: FormData | None) -> Response:
        alarm = alarm_id(request)
        cab.resolve_alarm(alarm, str_field(form, "note", 500), actor=actor(s))
        alarm_done(s, "ph.resolved", alarm)
        return RedirectResponse(alarms_back(request), status_code=303)

    async def ph_ack(request: Request, s: WebSession, form: FormData | None) -> Response:
        alarm = alarm_id(request)
        cab.acknowledge_alarm(alarm, actor=actor(s))
        alarm_done(s, "ph.acknowledged", alarm)
        return RedirectResponse(alarms_back(request), status_code=303)

    def journal_query(request: Request, s: WebSession, form: FormData | None
                      ) -> tuple[dict[str, str], str, list[Any], dict[str, str]]:
        """The journal's filters (the page's and its download's) as the reader typed them,
        the SQL ``WHERE`` they make with its parameters, and what links keep of them."""
        from controller.auth import require

        require(actor(s), "read_journal")
        # A patient id never goes into a URL (browser history, proxies' logs): the filter
        # form is POSTed, and so are its pages while a patient is asked for. A patient in
        # the query string is refused, not ignored: ignored, every patient's rows would
        # read as hers.
        if "patient" in request.query_params:
            raise InputError("a patient id is never put in a URL: type it in the journal's "
                             "Patient field", "un identifiant patient ne va jamais dans une "
                             "adresse : saisissez-le dans le champ Patient du journal",
                             code="PATIENT_IN_URL")
        q: Mapping[str, Any] = form if form is not None else request.query_params
        filters = query_filters(q, ("kind", "user", "drug", "patient", "from", "to"))
        where, params = [], []
        for key in ("kind", "user"):
            if filters[key]:
                where.append(f"{key} = ?")
                params.append(filters[key])
        if filters["patient"]:  # as typed, case aside ("p-042" finds P-042)
            where.append("patient = ? COLLATE NOCASE")
            params.append(filters["patient"])
        if filters["drug"]:
            # What a pharmacist types is a name ("morphine", "paracétamol") as often as an
            # id: every drug whose id is it or whose name holds it, case and accents aside.
            typed = fold(filters["drug"])
            ids = {filters["drug"]} | {
                str(d["id"]) for d in cab.store.query("SELECT id, name FROM drugs")
                if typed == fold(str(d["id"])) or typed in fold(str(d["name"]))}
            where.append(f"drug IN ({', '.join('?' for _ in ids)})")
            params.extend(sorted(ids))
        days = query_days(filters, s.lang)
        for day, op in zip(days, (">=", "<"), strict=True):
            if day is not None:  # the ward's days, as the screen shows the times
                where.append(f"ts {op} ?")
                params.append(day_after(day, cab.zone) if op == "<"
                              else day_start(day, cab.zone))
        sql_where = (" WHERE " + " AND ".join(where)) if where else ""
        return filters, sql_where, params, kept_filters(filters, days)

    async def ph_journal(request: Request, s: WebSession, form: FormData | None) -> Response:
        filters, sql_where, params, keep = journal_query(request, s, form)
        drugs = drugs_by_id()
        raw_page = (form if form is not None else request.query_params).get("page")
        page = max(1, parse_int(raw_page if isinstance(raw_page, str) and raw_page else "1",
                                "page"))
        total = int(cab.store.query(f"SELECT COUNT(*) AS n FROM journal{sql_where}",
                                    params)[0]["n"])
        rows = cab.store.query(
            f"SELECT * FROM journal{sql_where} ORDER BY seq DESC LIMIT ? OFFSET ?",
            [*params, JOURNAL_PAGE, (page - 1) * JOURNAL_PAGE])
        # The filter's options read as the kinds' words, in the reader's alphabetical order;
        # each keeps its code as its value, which is what the journal is filtered on.
        kinds = sorted(((journal_kind(s.lang, r["kind"]), r["kind"]) for r in cab.store.query(
            "SELECT DISTINCT kind FROM journal")), key=lambda k: (fold(k[0]), k[1]))
        return web.render(request, s, "ph_journal.html", rows=rows, filters=filters,
                          kinds=kinds, page=page, pages=max(1, -(-total // JOURNAL_PAGE)),
                          total=total, keep=keep,
                          kind_label=lambda kind: journal_kind(s.lang, kind),
                          # by name and strength, as the lists name it (the id follows)
                          drug_name=lambda drug: drug_text(drugs, drug)
                          if drug in drugs else "",
                          code_words=lambda code: journal_code(s.lang, code))

    async def ph_journal_csv(request: Request, s: WebSession, form: FormData | None
                             ) -> Response:
        """What the journal's filters select, every row and not one page, in the order it
        happened: the hospital's exports (a patient's movements, a month of one drug) were
        only the console's ``armoire journal export``. POSTed like the filters, so a patient
        id stays out of the URL; codes and the raw detail kept, as the console's export."""
        _, sql_where, params, keep = journal_query(request, s, form)
        names = ("seq", "ts", "kind", "code", "user", "drug", "pocket", "qty", "lot",
                 "expiry", "patient", "ref", "detail")
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\r\n")
        out.writerow(names)
        for row in cab.store.query(f"SELECT * FROM journal{sql_where} ORDER BY seq", params):
            pocket = (label_of(row["drawer"], row["row"], row["col"])
                      if row["drawer"] and row["row"] is not None else row["drawer"] or "")
            cells = {**row, "pocket": pocket}
            out.writerow([register.csv_cell("" if cells[n] is None else cells[n])
                          for n in names])
        name = f"journal-{keep.get('from', 'start')}-{keep.get('to', 'now')}"
        return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})

    async def register_of(request: Request, s: WebSession
                          ) -> tuple[register.Register | None, dict[str, str], dict[str, str]]:
        """The register the query asks for (None until a drug is chosen), the filters as the
        page shows them, and as its links keep them (days in YYYY-MM-DD)."""
        from controller.auth import require

        require(actor(s), "read_journal")
        q = request.query_params
        filters = query_filters(q, ("drug", "from", "to"))
        start, end = days = query_days(filters, s.lang)
        keep = kept_filters(filters, days)
        if not filters["drug"]:
            return None, filters, keep
        cab.drug(filters["drug"])  # UNKNOWN_DRUG for a drug that never existed
        if cab.store.private:
            return (register.build(cab.store.conn, filters["drug"], start, end, cab.zone),
                    filters, keep)
        return await asyncio.to_thread(register.build_checked, cab.store.path, filters["drug"],
                                       start, end, cab.zone), filters, keep

    async def ph_register(request: Request, s: WebSession, form: FormData | None
                          ) -> Response:
        reg, filters, keep = await register_of(request, s)
        drugs = sorted(drugs_by_id().values(),
                       key=lambda d: (not d["controlled"], fold(d["name"]), d["id"]))
        # The printed register stands alone: it names its period in words, the days as
        # the reader wrote them (an open end is the journal's start, or now).
        ends = ("both" if filters["from"] and filters["to"] else "from" if filters["from"]
                else "to" if filters["to"] else "all")
        period = translate(s.lang, f"reg.period_{ends}", start=filters["from"],
                           end=filters["to"])
        return web.render(request, s, "ph_register.html", reg=reg, filters=filters,
                          drugs=drugs, keep=keep, zone=cab.settings.timezone,
                          reg_drug=cab.drug(reg.drug) if reg else None, period=period,
                          now=cab.store.now_iso(),
                          code_words=lambda code: journal_code(s.lang, code))

    async def ph_register_csv(request: Request, s: WebSession, form: FormData | None
                              ) -> Response:
        reg, _, keep = await register_of(request, s)
        if reg is None:
            raise InputError("choose a drug", "choisissez un médicament", code="NO_DRUG")
        name = f"register-{reg.drug}-{keep.get('from', 'start')}-{keep.get('to', 'now')}"
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        return Response(register.to_csv(reg), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{safe}.csv"'})

    def users_filter(request: Request) -> str:
        """The users list's filter as the address had it (``q=…&role=…``), for the row's
        buttons, its boxes and where their answers go: a list narrowed to one person stays
        so through what is done from it. Only a filter the page would take is carried."""
        query = request.query_params.get("q", "").strip()
        role = request.query_params.get("role", "")
        return urlencode({k: v for k, v in (("q", query), ("role", role)) if v and (
            len(query) <= 80 if k == "q" else role in ROLES)})

    def users_back(request: Request) -> str:
        """The users list, as narrowed as it was, after an action done or refused."""
        kept = users_filter(request)
        return "/pharmacy/users" + (f"?{kept}" if kept else "")

    async def ph_users(request: Request, s: WebSession, form: FormData | None) -> Response:
        from controller.auth import require

        by = require(actor(s), "manage_users")
        everyone = people.users(cab)
        # Narrowed server-side by a GET form, so it works without a script and a list of
        # sixty staff is one search away; an unknown role is refused, not ignored (an
        # ignored one would show everyone as if they were that role).
        query = checked_text("q", request.query_params.get("q", ""), 80)
        role = checked_text("role", request.query_params.get("role", ""), 16)
        if role:
            check_role(role)
        typed = fold(query)
        shown = [u for u in everyone if (not role or u["role"] == role) and (
            typed in fold(str(u["name"])) or typed in fold(str(u["id"])))]
        # ?deactivate=, ?reactivate= or ?reset=ID asks first, naming the person: each
        # locks someone out of something (her account, her PIN) or back in.
        confirm, confirm_kind = None, ""
        for kind, wanted_active in (("deactivate", True), ("reactivate", False),
                                    ("reset", True)):
            asked = request.query_params.get(kind, "")
            if not asked:
                continue
            confirm = next((u for u in everyone if u["id"] == asked
                            and bool(u["active"]) == wanted_active
                            and (u["role"] != "admin" or by.role == "admin")
                            and (kind == "reactivate" or u["id"] != by.id)), None)
            confirm_kind = kind if confirm else ""
            break
        return web.render(request, s, "ph_users.html",
                          users=[u for u in shown if u["active"]],
                          inactive=[u for u in shown if not u["active"]],
                          filter_q=query, filter_role=role, total=len(everyone),
                          filter_query=users_filter(request),
                          confirm=confirm, confirm_kind=confirm_kind,
                          lang_names=LANG_NAMES, all_roles=ROLES, roles=[
            r for r in ROLES if r != "admin" or by.role == "admin"])

    async def ph_add_user(request: Request, s: WebSession, form: FormData | None) -> Response:
        pin = form.get("pin") if form is not None else None
        user_id = str_field(form, "id", 32)
        await people.create_user(cab, user_id, str_field(form, "name", 80),
                                 str_field(form, "role", 16), pin if isinstance(pin, str) else "",
                                 str_field(form, "lang", 2), actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(s.lang, "ph.user_created",
                                                        id=user_id)})
        return RedirectResponse(users_back(request), status_code=303)

    async def ph_unlock(request: Request, s: WebSession, form: FormData | None) -> Response:
        user_id = str(request.path_params["user"])
        people.unlock_user(cab, user_id, actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(s.lang, "ph.unlocked", id=user_id)})
        return RedirectResponse(users_back(request), status_code=303)

    def require_confirmed(form: FormData | None, user_id: str, en: str, fr: str,
                          button_en: str, button_fr: str) -> None:
        """The users page's confirmation box sends the id it named; a stray or replayed
        post, or one from a row above or below, names nobody or someone else and changes
        nothing (``CONFIRM_NEEDED``)."""
        if str_field(form, "confirm", 32) != user_id:
            raise InputError(f"{en} {user_id} must be confirmed: use {button_en} on the "
                             "users page", f"{fr} {user_id} doit être confirmée : passez "
                             f"par {button_fr} sur la page Utilisateurs",
                             code="CONFIRM_NEEDED")

    def confirm_back(kind: str) -> Callable[[Request], str]:
        """A refused reset or reactivation (a weak PIN) comes back to its box, open."""
        def back(request: Request) -> str:
            user_id = quote(str(request.path_params["user"]), safe="")
            kept = users_filter(request)
            return f"/pharmacy/users?{kind}={user_id}" + (f"&{kept}" if kept else "") + "#confirm"
        return back

    async def ph_deactivate(request: Request, s: WebSession, form: FormData | None
                            ) -> Response:
        user_id = str(request.path_params["user"])
        require_confirmed(form, user_id, "deactivating", "la désactivation de",
                          "Deactivate", "Désactiver")
        people.deactivate_user(cab, user_id, actor=actor(s))
        # Her pharmacy sessions end now; a cabinet session ends when the cabinet locks,
        # which it does at once, or after her running operation (people.deactivate_user).
        web.sessions.end_user(user_id, but_cabinet=True)
        s.flash.append({"kind": "ok", "text": translate(s.lang, "ph.deactivated",
                                                        id=user_id)})
        return RedirectResponse(users_back(request), status_code=303)

    async def ph_reactivate(request: Request, s: WebSession, form: FormData | None
                            ) -> Response:
        user_id = str(request.path_params["user"])
        require_confirmed(form, user_id, "reactivating", "la réactivation de",
                          "Reactivate", "Réactiver")
        pin = form.get("pin") if form is not None else None
        await people.reactivate_user(cab, user_id, pin if isinstance(pin, str) else "",
                                     actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(s.lang, "ph.reactivated",
                                                        id=user_id)})
        return RedirectResponse(users_back(request), status_code=303)

    async def ph_reset_pin(request: Request, s: WebSession, form: FormData | None
                           ) -> Response:
        user_id = str(request.path_params["user"])
        require_confirmed(form, user_id, "resetting the PIN of", "la réinitialisation du "
                          "PIN de", "Reset PIN", "Réinitialiser le PIN")
        pin = form.get("pin") if form is not None else None
        await people.reset_pin(cab, user_id, pin if isinstance(pin, str) else "", actor=actor(s))
        # Her pharmacy sessions end now (their PIN is no longer hers alone); a cabinet
        # session ends when the cabinet locks (Cabinet.end_session_of).
        web.sessions.end_user(user_id, but_cabinet=True)
        s.flash.append({"kind": "ok", "text": translate(s.lang, "pin.reset_done", id=user_id)})
        return RedirectResponse(users_back(request), status_code=303)

    async def ph_badge(request: Request, s: WebSession, form: FormData | None) -> Response:
        """The desk reader typed a badge into the person's row: enrol it (or replace hers).
        The UID is never kept for re-display nor logged (SECRET_FIELDS)."""
        user_id = str(request.path_params["user"])
        raw = form.get("badge") if form is not None else None
        replaced = people.enrol_badge(cab, user_id, raw if isinstance(raw, str) else "",
                                      actor=actor(s))
        key = "badge.replaced" if replaced else "badge.enrolled"
        s.flash.append({"kind": "ok", "text": translate(s.lang, key, id=user_id)})
        return RedirectResponse(users_back(request), status_code=303)

    async def ph_badge_revoke(request: Request, s: WebSession, form: FormData | None
                              ) -> Response:
        user_id = str(request.path_params["user"])
        people.revoke_badge(cab, user_id, actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(s.lang, "badge.revoked", id=user_id)})
        return RedirectResponse(users_back(request), status_code=303)

    def own_pin_page(template: str) -> Handler:
        async def page(request: Request, s: WebSession, form: FormData | None) -> Response:
            assert s.user is not None
            return web.render(request, s, template,
                              required=cab.pin_change_required(s.user.id))
        return page

    def own_pin_change(done: str) -> Handler:
        async def change(request: Request, s: WebSession, form: FormData | None
                         ) -> Response:
            def secret(name: str) -> str:
                value = form.get(name) if form is not None else None
                return value if isinstance(value, str) else ""

            new = secret("new_pin")
            if new != secret("confirm_pin"):
                raise InputError("the two new PINs differ", "les deux nouveaux codes "
                                 "diffèrent", code="PIN_MISMATCH")
            # The pharmacy page's person is its session's; the touchscreen's, the cabinet's.
            who = actor(s) if s.kind == "pharmacy" else None
            user = await web.checked_pin(request, people.change_own_pin(
                cab, secret("current_pin"), new, actor=who))
            # Sessions opened elsewhere under the old PIN end; this one goes on.
            web.sessions.end_user(user.id, but_token=s.token)
            s.flash.append({"kind": "ok", "text": translate(s.lang, "pin.changed")})
            return RedirectResponse(done, status_code=303)
        return change

    def pick_lines() -> list[dict[str, Any]]:
        drugs = drugs_by_id()
        return [{**p, "text": drug_text(drugs, p["drug"]),
                 "controlled": bool(drugs.get(p["drug"], {}).get("controlled"))}
                for p in replenishment.pick_list(cab)]

    async def ph_cabinet(request: Request, s: WebSession, form: FormData | None) -> Response:
        return web.render(request, s, "ph_cabinet.html", drawers=drawers_view(),
                          pick=pick_lines(), now=cab.store.now_iso())

    async def ph_picklist_csv(request: Request, s: WebSession, form: FormData | None
                              ) -> Response:
        """What to bring to the ward, for the pharmacy's preparation before the round."""
        names = ("pocket", "drug", "name", "usable", "expired", "level", "refill_to", "bring")
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\r\n")
        out.writerow(names)
        for line in pick_lines():
            out.writerow([register.csv_cell(line["text"] if n == "name" else line[n])
                          for n in names])
        # The ward's clock, as on the page; no colons (not allowed in Windows file names).
        stamp = local_text(cab.store.now_iso(), cab.zone).replace(" ", "T").replace(":", "")
        return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="picklist-{stamp}.csv"'})

    async def ph_layout(request: Request, s: WebSession, form: FormData | None) -> Response:
        last = cab.store.query("SELECT id, status, problem FROM layout_proposals "
                               "ORDER BY id DESC LIMIT 1")
        today = relayout.current_placements(cab)
        lasa = relayout.lasa_warnings(cab)
        context: dict[str, Any] = {"proposal": None, "today": plan_view(today, [], set()),
                                   "pairs_today": [], "tasks": tasks_view(s.lang),
                                   "lasa_warnings": [w.message(s.lang) for w in lasa],
                                   "lasa_entries": len({w.entry for w in lasa})}
        if last:
            proposal, pairs_today = layout_details(int(last[0]["id"]), last[0]["problem"])
            drugs = drugs_by_id()
            # By pocket: a drug in two pockets keeps one and moves the other.
            was = {(p["drawer"], p["row"], p["col"]): p["drug"] for p in today}
            changed = {label_of(p["drawer"], p["row"], p["col"]) for p in proposal["placements"]
                       if was.get((p["drawer"], p["row"], p["col"])) != p["drug"]}
            if proposal["status"] == "proposed":
                context["today"] = plan_view(today, pairs_today, set())
                context["pairs_today"] = pairs_view(pairs_today, s.lang)
            context.update(
                proposal=proposal,
                plan=plan_view(proposal["placements"], proposal["conflicts"], changed),
                pairs=pairs_view(proposal["conflicts"], s.lang),
                moves=[move_line(drugs, m, s.lang) for m in proposal["moves"]])
        return web.render(request, s, "ph_layout.html", **context)

    layout_cache: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}

    def layout_details(proposal_id: int, problem_json: str
                       ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The proposal (relayout.describe) and today's conflicting pairs under the same
        similarity rule. Scoring names is quadratic in the formulary, so a proposal is worked
        out once; only its status is read again."""
        if proposal_id not in layout_cache:
            from controller.layout import Placement, parse_problem

            proposal = relayout.describe(cab, proposal_id)
            problem_dict = json.loads(problem_json)
            today = [Placement(p["drug"], p["drawer"], p["row"], p["col"])
                     for p in problem_dict["current"]]
            layout_cache.clear()
            layout_cache[proposal_id] = (proposal, relayout.conflict_pairs(
                parse_problem(problem_dict), today))
        proposal, pairs = layout_cache[proposal_id]
        row = cab.store.query("SELECT status, decided_by, decided_ts FROM layout_proposals "
                              "WHERE id=?", (proposal_id,))[0]
        return {**proposal, **row}, pairs

    async def ph_layout_propose(request: Request, s: WebSession, form: FormData | None
                                ) -> Response:
        await relayout.propose_async(cab, max_moves=optional_int(form, "max_moves"),
                                     time_limit=LAYOUT_SECONDS, actor=actor(s))
        return RedirectResponse("/pharmacy/layout", status_code=303)

    def proposal_id(request: Request) -> int:
        return path_int(request, "proposal")

    async def ph_layout_approve(request: Request, s: WebSession, form: FormData | None
                                ) -> Response:
        relayout.approve(cab, proposal_id(request), str_field(form, "note", 500),
                         actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(s.lang, "layout.approved")})
        return RedirectResponse("/pharmacy/layout", status_code=303)

    async def ph_layout_abandon(request: Request, s: WebSession, form: FormData | None
                                ) -> Response:
        # Nothing brings the dropped tasks back: the form's box must be ticked.
        if str_field(form, "confirm", 1) != "1":
            raise InputError("tick the box to confirm that the remaining tasks are dropped",
                             "cochez la case pour confirmer l'abandon des tâches restantes",
                             code="CONFIRM_NEEDED")
        dropped = relayout.abandon(cab, str_field(form, "note", 500), actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(s.lang, "layout.abandoned",
                                                        n=dropped)})
        return RedirectResponse("/pharmacy/layout", status_code=303)

    async def ph_layout_return(request: Request, s: WebSession, form: FormData | None
                               ) -> Response:
        """A stuck task's bench units that cannot go back into their pocket, counted by the
        pharmacist and recorded as returned to the pharmacy (``relayout.
        return_to_pharmacy``)."""
        n = relayout.return_to_pharmacy(cab, path_int(request, "task"),
                                        int_field(form, "count"),
                                        str_field(form, "note", 500), actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(s.lang, "layout.returned", n=n)})
        return RedirectResponse("/pharmacy/layout", status_code=303)

    async def ph_layout_reject(request: Request, s: WebSession, form: FormData | None
                               ) -> Response:
        relayout.reject(cab, proposal_id(request), str_field(form, "note", 500),
                        actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(s.lang, "layout.rejected")})
        return RedirectResponse("/pharmacy/layout", status_code=303)

    async def ph_levels(request: Request, s: WebSession, form: FormData | None) -> Response:
        drugs = drugs_by_id()
        pending = replenishment.pending(cab)
        per = Counter(str(p["drawer"]) for p in pending)
        counts = [(str(d["id"]), per[str(d["id"])]) for d in cab.store.query(
            "SELECT id FROM drawers ORDER BY position")]
        one, cut = drawer_choice(request, counts, LEVELS_ALL)
        rows = [{**p, "label": label_of(p["drawer"], p["row"], p["col"]),
                 "drug_text": drug_text(drugs, p["drug"])}
                for p in pending if not one or p["drawer"] == one]
        return web.render(request, s, "ph_levels.html", proposals=rows, drawer=one, cut=cut,
                          drawer_counts=[(d, n) for d, n in counts if n or d == one],
                          total=len(pending), big=LEVELS_ALL)

    async def ph_levels_propose(request: Request, s: WebSession, form: FormData | None
                                ) -> Response:
        made = await replenishment.propose_async(cab, actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(s.lang, "levels.computed",
                                                        n=len(made))})
        return RedirectResponse("/pharmacy/levels", status_code=303)

    async def ph_levels_decide(request: Request, s: WebSession, form: FormData | None
                               ) -> Response:
        decision = str_field(form, "decision", 8)
        if decision not in ("accept", "reject"):
            raise InputError("decision: accept or reject", "décision : accepter ou refuser",
                             code="BAD_DECISION")
        pid = proposal_id(request)
        prop = replenishment.proposal(cab, pid)
        replenishment.decide(cab, pid, decision == "accept", str_field(form, "note", 500),
                             actor=actor(s))
        key = "levels.accepted" if decision == "accept" else "levels.rejected_msg"
        s.flash.append({"kind": "ok", "text": translate(
            s.lang, key, pocket=label_of(prop["drawer"], prop["row"], prop["col"]))})
        # back to the proposal's drawer, where the next ones are
        return RedirectResponse(f"/pharmacy/levels?drawer={quote(str(prop['drawer']), safe='')}",
                                status_code=303)

    # -- pharmacy: the formulary and the pockets' drugs ------------------------------------
    def flag_field(form: FormData | None, name: str) -> bool:
        """A checkbox: absent is False, ``1`` is True; anything else is refused rather than
        guessed (a controlled-drug flag must mean what the pharmacist ticked)."""
        raw = form.get(name) if form is not None else None
        if raw is None:
            return False
        if raw == "1":
            return True
        raise InputError(f"{name}: true or false", f"{name} : vrai ou faux", code="BAD_FLAG")

    def drug_fields(form: FormData | None) -> dict[str, Any]:
        return {"name": str_field(form, "name", formulary.NAME_MAX),
                "strength": str_field(form, "strength", formulary.STRENGTH_MAX),
                "form": str_field(form, "form", formulary.FORM_MAX),
                "gtin": str_field(form, "gtin", 14),
                **{f: flag_field(form, f) for f in formulary.FLAGS},
                "max_per_withdrawal": optional_int(form, "max_per_withdrawal")}

    def pockets_view(drawers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Those drawers' pockets for the formulary tab: what is placed, how many units, and
        which pockets can take a drug (unassigned, empty) or give theirs up (empty)."""
        drugs = drugs_by_id()
        out = []
        for d in drawers:
            rows = cab.store.query("SELECT drawer, row, col, drug, capacity, min_level, "
                                   "max_level FROM pockets WHERE drawer=? ORDER BY row, col",
                                   (d["id"],))
            out.append({"id": d["id"], "type": d["type"], "pockets": [
                {"pocket": p, "label": p.label, "drug": drugs.get(p.drug or ""),
                 "on_hand": cab.store.on_hand(p.drawer, p.row, p.col)}
                for p in (Pocket(**r) for r in rows)]})
        return out

    async def ph_formulary(request: Request, s: WebSession, form: FormData | None
                           ) -> Response:
        edit_id = request.query_params.get("edit", "")[:40]
        edit = cab.drug(edit_id) if edit_id else None
        drawers = cab.store.query(
            "SELECT d.*, (SELECT COUNT(*) FROM pockets p WHERE p.drawer = d.id) AS n "
            "FROM drawers d ORDER BY position")
        counts = [(str(d["id"]), int(d["n"])) for d in drawers]
        one, cut = drawer_choice(request, counts, POCKETS_ALL)
        shown = [d for d in drawers if not one or d["id"] == one]
        return web.render(request, s, "ph_formulary.html", drugs=formulary.drugs(cab),
                          edit=edit, drawers=pockets_view(shown), drawer_counts=counts,
                          drawer=one, total=sum(n for _, n in counts), cut=cut,
                          big=POCKETS_ALL, relayout_running=bool(relayout.tasks(cab)))

    def pocket_back(request: Request) -> str:
        """Back to the pocket's own drawer, at its row, after an action done or refused."""
        drawer, row, col = path_pocket(request)
        return (f"/pharmacy/formulary?drawer={quote(drawer, safe='')}"
                f"#slot-{label_of(drawer, row, col)}")

    def flash_notices(s: WebSession, notices: list[formulary.Notice]) -> None:
        for n in notices:
            s.flash.append({"kind": "warn", "code": n.code, "text": n.message(s.lang)})

    def name_lookalikes(s: WebSession, drug_id: str) -> None:
        """The formulary's drugs a new one may be taken for: a look-alike name (the Tall
        Man rule) or the same name at another strength. Said when it is added: the
        placement's own warning (LOOKALIKE_NEIGHBOUR) comes only next to one, if ever."""
        drugs = drugs_by_id()
        new = drugs[drug_id]
        others = [d for d in drugs.values() if d["id"] != drug_id and (
            look_alike(new["name"], d["name"]) or fold(new["name"]) == fold(d["name"]))]
        if not others:
            return
        names = ", ".join(f"{drug_text(drugs, d['id'])} ({d['id']})"
                          for d in sorted(others, key=lambda d: (fold(d["name"]), d["id"])))
        s.flash.append({"kind": "warn", "code": "LOOKALIKE_NAME", "text": translate(
            s.lang, "form.lookalike_name", drug=drug_text(drugs, drug_id), names=names)})

    async def ph_drug_add(request: Request, s: WebSession, form: FormData | None
                          ) -> Response:
        drug_id = str_field(form, "id", 32)
        formulary.add_drug(cab, drug_id, actor=actor(s), **drug_fields(form))
        s.flash.append({"kind": "ok", "text": translate(s.lang, "form.added", id=drug_id)})
        name_lookalikes(s, drug_id)
        return RedirectResponse("/pharmacy/formulary", status_code=303)

    def edit_back(request: Request) -> str:
        return "/pharmacy/formulary?edit=" + quote(str(request.path_params["drug"]), safe="")

    async def ph_drug_edit(request: Request, s: WebSession, form: FormData | None
                           ) -> Response:
        drug_id = str(request.path_params["drug"])
        changes, notices = formulary.change_drug(cab, drug_id, actor=actor(s),
                                                 **drug_fields(form))
        key = "form.changed" if changes else "form.unchanged"
        s.flash.append({"kind": "ok", "text": translate(s.lang, key, id=drug_id)})
        flash_notices(s, notices)
        if {"name", "strength"} & set(changes):  # a new name may look like another's
            name_lookalikes(s, drug_id)
        return RedirectResponse("/pharmacy/formulary", status_code=303)

    async def ph_pocket_assign(request: Request, s: WebSession, form: FormData | None
                               ) -> Response:
        drawer, row, col = path_pocket(request)
        capacity = int_field(form, "capacity")
        notices = formulary.assign_pocket(cab, drawer, row, col, str_field(form, "drug", 32),
                                          capacity, actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(
            s.lang, "form.assigned", pocket=label_of(drawer, row, col))})
        flash_notices(s, notices)
        return RedirectResponse(pocket_back(request), status_code=303)

    async def ph_pocket_capacity(request: Request, s: WebSession, form: FormData | None
                                 ) -> Response:
        drawer, row, col = path_pocket(request)
        notices = formulary.set_capacity(cab, drawer, row, col, int_field(form, "capacity"),
                                         actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(
            s.lang, "form.capacity_changed", pocket=label_of(drawer, row, col))})
        flash_notices(s, notices)
        return RedirectResponse(pocket_back(request), status_code=303)

    async def ph_pocket_unassign(request: Request, s: WebSession, form: FormData | None
                                 ) -> Response:
        drawer, row, col = path_pocket(request)
        drug_id = formulary.unassign_pocket(cab, drawer, row, col, actor=actor(s))
        s.flash.append({"kind": "ok", "text": translate(
            s.lang, "form.unassigned", pocket=label_of(drawer, row, col), id=drug_id)})
        return RedirectResponse(pocket_back(request), status_code=303)

    # -- errors outside the pages (unknown URL, method) ------------------------------------
    async def not_found(request: Request, exc: Exception) -> Response:
        session = web.resolve(request)  # not kept: an unknown URL creates no session
        status = int(getattr(exc, "status_code", 404))
        key = "error.not_found" if status == 404 else "error.title"
        return web.render(request, session, "error.html", status=status, code=str(status),
                          message=translate(session.lang, key))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        try:
            session = web.resolve(request)
            response = web.render(request, session, "error.html", status=500,
                                  code="INTERNAL",
                                  message=translate(session.lang, "error.internal"))
        except Exception:  # the page itself failed (database gone...): still no trace
            log.exception("the error page failed on %s", request.url.path)
            response = PlainTextResponse(
                f"{translate('fr', 'error.internal')}\n{translate('en', 'error.internal')}"
                "\n[INTERNAL]\n", status_code=500)
        return SecurityHeaders.add_to(response)

    E = web.endpoint
    pocket_path = "/restock/{drawer}/{row}/{col}"
    routes = [
        Route("/healthz", healthz),
        Route("/", E(lock)),
        Route("/lang", E(set_lang, back="/"), methods=["POST"]),
        Route("/login", E(login, back="/"), methods=["POST"]),
        Route("/login/badge", E(login_badge, back="/"), methods=["POST"]),
        Route("/login/pin", E(badge_pin_page)),
        Route("/login/pin", E(badge_pin_login, back="/login/pin"), methods=["POST"]),
        Route("/logout", E(logout, back="/"), methods=["POST"]),
        Route("/touch", E(touch), methods=["POST"]),
        Route("/menu", E(menu, area="cabinet")),
        Route("/withdraw", E(drug_page("withdraw"), area="cabinet", perm="withdraw")),
        Route("/withdraw", E(withdraw, area="cabinet", perm="withdraw", back="/withdraw"),
              methods=["POST"]),
        Route("/return", E(drug_page("return"), area="cabinet", perm="return")),
        Route("/return", E(return_, area="cabinet", perm="return", back="/return"),
              methods=["POST"]),
        Route("/waste", E(drug_page("waste"), area="cabinet", perm="waste")),
        Route("/waste", E(waste, area="cabinet", perm="waste", back="/waste"),
              methods=["POST"]),
        Route("/operation", E(operation, area="cabinet")),
        Route("/operation/count", E(count, area="cabinet", back="/operation"),
              methods=["POST"]),
        Route("/operation/close", E(close, area="cabinet", back="/operation"),
              methods=["POST"]),
        Route("/sim/close", E(sim_close, area="cabinet", back="/operation"), methods=["POST"]),
        Route("/restock", E(restock_list, area="cabinet", perm="restock")),
        Route(pocket_path, E(restock_page, area="cabinet", perm="restock")),
        Route(pocket_path, E(restock, area="cabinet", perm="restock",
                             back=lambda r: r.url.path),
              methods=["POST"]),
        Route(pocket_path + "/remove", E(restock_remove_first, area="cabinet", perm="remove",
                                         back=lambda r: r.url.path.rsplit("/", 1)[0]),
              methods=["POST"]),
        Route("/remove", E(remove_list, area="cabinet", perm="remove")),
        Route("/remove", E(remove, area="cabinet", perm="remove", back="/remove"),
              methods=["POST"]),
        Route("/count", E(count_list, area="cabinet", perm="count")),
        Route("/count", E(count_pocket, area="cabinet", perm="count", back="/count"),
              methods=["POST"]),
        Route("/drawers", E(drawers_page, area="cabinet", perm="reset_drawer")),
        Route("/drawers/reset", E(drawer_reset, area="cabinet", perm="reset_drawer",
                                  back="/drawers"), methods=["POST"]),
        Route("/relayout", E(relayout_list, area="cabinet", perm="move_stock")),
        Route("/relayout/finish", E(relayout_finish, area="cabinet", perm="move_stock",
                                    back="/relayout"), methods=["POST"]),
        Route("/relayout/{task}/start", E(relayout_start, area="cabinet", perm="move_stock",
                                              back="/relayout"), methods=["POST"]),
        Route("/relayout/{task}/put_back", E(relayout_put_back, area="cabinet",
                                                 perm="move_stock", back="/relayout"),
              methods=["POST"]),
        Route("/events", E(events)),
        Route("/pharmacy/login", E(ph_login_page)),
        Route("/pharmacy/login", E(ph_login, back="/pharmacy/login"), methods=["POST"]),
        Route("/pharmacy", E(ph_alarms, area="pharmacy")),
        Route("/pharmacy/alarms/{alarm}/resolve",
              E(ph_resolve, area="pharmacy", back=alarms_back), methods=["POST"]),
        Route("/pharmacy/alarms/{alarm}/ack",
              E(ph_ack, area="pharmacy", back=alarms_back), methods=["POST"]),
        Route("/pharmacy/journal", E(ph_journal, area="pharmacy")),
        Route("/pharmacy/journal", E(ph_journal, area="pharmacy"), methods=["POST"]),
        Route("/pharmacy/journal.csv", E(ph_journal_csv, area="pharmacy"), methods=["POST"]),
        Route("/pharmacy/register", E(ph_register, area="pharmacy", perm="read_journal")),
        Route("/pharmacy/register.csv", E(ph_register_csv, area="pharmacy",
                                          perm="read_journal")),
        Route("/pharmacy/users", E(ph_users, area="pharmacy")),
        Route("/pharmacy/users", E(ph_add_user, area="pharmacy", back=users_back),
              methods=["POST"]),
        Route("/pharmacy/users/{user}/unlock",
              E(ph_unlock, area="pharmacy", back=users_back), methods=["POST"]),
        Route("/pharmacy/users/{user}/pin",
              E(ph_reset_pin, area="pharmacy", back=confirm_back("reset")), methods=["POST"]),
        Route("/pharmacy/users/{user}/badge",
              E(ph_badge, area="pharmacy", perm="manage_badges", back=users_back),
              methods=["POST"]),
        Route("/pharmacy/users/{user}/badge/revoke",
              E(ph_badge_revoke, area="pharmacy", perm="manage_badges",
                back=users_back), methods=["POST"]),
        Route("/pin", E(own_pin_page("pin.html"), area="cabinet")),
        Route("/pin", E(own_pin_change("/menu"), area="cabinet", back="/pin"),
              methods=["POST"]),
        Route("/pharmacy/pin", E(own_pin_page("ph_pin.html"), area="pharmacy")),
        Route("/pharmacy/pin", E(own_pin_change("/pharmacy"), area="pharmacy",
                                 back="/pharmacy/pin"), methods=["POST"]),
        Route("/pharmacy/users/{user}/deactivate",
              E(ph_deactivate, area="pharmacy", back=users_back), methods=["POST"]),
        Route("/pharmacy/users/{user}/reactivate",
              E(ph_reactivate, area="pharmacy", back=confirm_back("reactivate")),
              methods=["POST"]),
        Route("/pharmacy/cabinet", E(ph_cabinet, area="pharmacy")),
        Route("/pharmacy/picklist.csv", E(ph_picklist_csv, area="pharmacy")),
        Route("/pharmacy/layout", E(ph_layout, area="pharmacy", perm="approve_layout")),
        Route("/pharmacy/layout/propose", E(ph_layout_propose, area="pharmacy",
                                            perm="approve_layout", back="/pharmacy/layout"),
              methods=["POST"]),
        Route("/pharmacy/layout/{proposal}/approve",
              E(ph_layout_approve, area="pharmacy", perm="approve_layout",
                back="/pharmacy/layout"), methods=["POST"]),
        Route("/pharmacy/layout/{proposal}/reject",
              E(ph_layout_reject, area="pharmacy", perm="approve_layout",
                back="/pharmacy/layout"), methods=["POST"]),
        Route("/pharmacy/layout/tasks/{task}/return",
              E(ph_layout_return, area="pharmacy", perm="approve_layout",
                back="/pharmacy/layout"), methods=["POST"]),
        Route("/pharmacy/layout/abandon",
              E(ph_layout_abandon, area="pharmacy", perm="approve_layout",
                back="/pharmacy/layout"), methods=["POST"]),
        Route("/pharmacy/levels", E(ph_levels, area="pharmacy", perm="approve_levels")),
        Route("/pharmacy/levels/propose", E(ph_levels_propose, area="pharmacy",
                                            perm="approve_levels", back="/pharmacy/levels"),
              methods=["POST"]),
        Route("/pharmacy/levels/{proposal}/decide",
              E(ph_levels_decide, area="pharmacy", perm="approve_levels",
                back="/pharmacy/levels"), methods=["POST"]),
        Route("/pharmacy/formulary", E(ph_formulary, area="pharmacy", perm="manage_formulary")),
        Route("/pharmacy/formulary", E(ph_drug_add, area="pharmacy", perm="manage_formulary",
                                       back="/pharmacy/formulary"), methods=["POST"]),
        Route("/pharmacy/formulary/{drug}/edit",
              E(ph_drug_edit, area="pharmacy", perm="manage_formulary", back=edit_back),
              methods=["POST"]),
        Route("/pharmacy/pockets/{drawer}/{row}/{col}/assign",
              E(ph_pocket_assign, area="pharmacy", perm="manage_formulary",
                back=pocket_back), methods=["POST"]),
        Route("/pharmacy/pockets/{drawer}/{row}/{col}/capacity",
              E(ph_pocket_capacity, area="pharmacy", perm="manage_formulary",
                back=pocket_back), methods=["POST"]),
        Route("/pharmacy/pockets/{drawer}/{row}/{col}/unassign",
              E(ph_pocket_unassign, area="pharmacy", perm="manage_formulary",
                back=pocket_back), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=web.lifespan,
                    exception_handlers={404: not_found, 405: not_found, 500: server_error})
    # Only the names this cabinet answers to (DNS rebinding); inside SecurityHeaders, so
    # that its refusal carries them too.
    app.add_middleware(TrustedHosts, hosts=cab.config.hosts)
    # A sender that cannot be told (a proxy at the TCP port, or one on its socket naming no
    # client) is refused before anything else, with the security headers too.
    app.add_middleware(ProxyDoor)
    app.add_middleware(SecurityHeaders)
    # HTTPS as the site's proxy reports it (limits.identify, the one place that reads
    # forwarding headers): the session cookie is Secure on the pages it served that way.
    app.add_middleware(ProxiedScheme)
    app.state.web = web
    return app
