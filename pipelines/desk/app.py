"""The desk's Starlette application: sign-in, sessions, CSRF on every form, roles, security
headers, and files served only from the data folder. The views are in :mod:`pipelines.desk.pages`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.core.config import Settings
from pipelines.core.errors import TieoutError
from pipelines.core.parsing import dollars
from pipelines.desk import auth
from pipelines.desk.running import Runner
from pipelines.ledger import Ledger
from pipelines.ledger.desk import add_event, user

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-store",
}
CSRF_FIELD = "csrf_token"
View = Callable[[Request], Awaitable[Response]]


class SecurityHeaders:
    """Every answer carries the security headers; a page without its own CSP gets the desk's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.decode().lower() for k, _ in headers}
                wanted = {**HEADERS, "content-security-policy": CSP}
                headers += [(k.encode(), v.encode()) for k, v in wanted.items() if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def client_address(request: Request) -> str:
    """The client's address (behind a trusted proxy, uvicorn has put the forwarded one here)."""
    return request.client.host if request.client else "unknown"


def is_https(request: Request) -> bool:
    """TLS as the client sees it (uvicorn takes X-Forwarded-Proto only from a trusted proxy)."""
    return request.url.scheme == "https"


class Desk:
    """What the views share: settings, sessions, the throttle, the templates."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.sessions = auth.Sessions(clock)
        self.throttle = auth.Throttle(clock)
        self.runner = Runner()
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html", "j2"], default=True),
        )
        self.env.filters["dollars"] = dollars
        self.env.filters["when"] = lambda v: str(v or "")[:19].replace("T", " ")

    def ledger(self, *, readonly: bool = False) -> Ledger:
        return Ledger(self.settings.ledger, readonly=readonly)

    def session(self, request: Request) -> auth.Session | None:
        return self.sessions.get(request.cookies.get(auth.SESSION_COOKIE))

    def still_signed_in(self, request: Request, session: auth.Session) -> bool:
        """A removed user, or one given another role, is signed out at their next request."""
        with self.ledger(readonly=True) as ledger:
            found = user(ledger, session.name)
        if found is None or found["role"] != session.role:
            self.sessions.end(request.cookies.get(auth.SESSION_COOKIE))
            return False
        return True

    def render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        session = self.session(request)
        flashes = list(session.flashes) if session else []
        if session:
            session.flashes.clear()
        role = session.role if session else ""
        html = self.env.get_template(template).render(
            request=request,
            me=session,
            csrf=session.csrf if session else "",
            csrf_field=CSRF_FIELD,
            flashes=flashes,
            may=lambda action: auth.may(role, action),
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def record(self, session: auth.Session, action: str, subject: str, **detail: Any) -> None:
        """An action on the desk, as an event in the ledger (who, when, what)."""
        with self.ledger() as ledger:
            add_event(ledger, session.name, action, subject, detail)


def forbidden(reason: str) -> Response:
    return HTMLResponse(f"<!doctype html><title>403</title><p>{reason}</p>", status_code=403)


def guarded(
    desk: Desk,
    view: Callable[..., Awaitable[Response]],
    action: str | None,
    back: str = "/inbox",
) -> View:
    """A view behind sign-in; a POST also behind its CSRF token, then ``action``'s role. A
    refusal by tieout itself (a :class:`TieoutError`) is said on the page ``back``."""

    async def endpoint(request: Request) -> Response:
        session = desk.session(request)
        if session is not None and not desk.still_signed_in(request, session):
            session = None
        if session is None:
            target = quote(request.url.path) if request.method == "GET" else "/"
            return RedirectResponse(f"/login?next={target}", status_code=303)
        form: FormData | None = None
        if request.method == "POST":
            if not auth.may(session.role, action or ""):
                return forbidden(f"a {session.role} may not do this")
            limit = desk.settings.max_file_mb * 1024 * 1024
            if int(request.headers.get("content-length") or 0) > limit + 64 * 1024:
                return HTMLResponse("that file is larger than max_file_mb", status_code=413)
            form = await request.form(max_files=20, max_fields=50)
            if not auth.same(str(form.get(CSRF_FIELD) or ""), session.csrf):
                await form.close()
                return forbidden(
                    "this form is out of date (no valid CSRF token): load the page again"
                )
        elif action is not None and not auth.may(session.role, action):
            return forbidden(f"a {session.role} may not do this")
        try:
            return await view(request, session, form)
        except TieoutError as exc:
            if request.method == "GET":
                return desk.render(request, "error.html.j2", status=400, message=str(exc))
            session.flashes.append(str(exc))
            return RedirectResponse(back, status_code=303)
        finally:
            if form is not None:
                await form.close()

    return endpoint


def login_routes(desk: Desk) -> list[Route]:
    async def login_page(request: Request) -> Response:
        token = request.cookies.get(auth.LOGIN_COOKIE) or secrets.token_urlsafe(32)
        response = desk.render(
            request, "login.html.j2", login_csrf=token, next=safe_next(request.query_params)
        )
        _set_cookie(response, request, auth.LOGIN_COOKIE, token, max_age=3600)
        return response

    async def login(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10)
        if not auth.same(str(form.get(CSRF_FIELD) or ""), request.cookies.get(auth.LOGIN_COOKIE)):
            return forbidden("this form is out of date (no valid CSRF token): load the page again")
        name = str(form.get("username") or "").strip()[:100]
        password = str(form.get("password") or "")[:1000]
        address = client_address(request)
        wait = desk.throttle.wait_s(name, address)
        if wait > 0:
            return desk.render(
                request,
                "login.html.j2",
                status=429,
                login_csrf=request.cookies.get(auth.LOGIN_COOKIE),
                next=safe_next(form),
                error=f"too many wrong passwords: try again in {int(wait) + 1} seconds",
            )
        with desk.ledger() as ledger:
            found = user(ledger, name)
        if found is None or not auth.password_matches(found["password_hash"], password):
            desk.throttle.failed(name, address)
            return desk.render(
                request,
                "login.html.j2",
                status=401,
                login_csrf=request.cookies.get(auth.LOGIN_COOKIE),
                next=safe_next(form),
                error="that name and password do not match a user of this desk",
            )
        desk.throttle.succeeded(name, address)
        token = desk.sessions.start(found["name"], found["role"])
        with desk.ledger() as ledger:
            add_event(ledger, found["name"], "sign_in", found["name"], {"address": address})
        response = RedirectResponse(safe_next(form), status_code=303)
        _set_cookie(response, request, auth.SESSION_COOKIE, token, max_age=None)
        response.delete_cookie(auth.LOGIN_COOKIE, path="/")
        return response

    async def logout(request: Request, session: auth.Session, form: FormData | None) -> Response:
        desk.sessions.end(request.cookies.get(auth.SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
        return response

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", guarded(desk, logout, auth.SIGN_OUT), methods=["POST"]),
    ]


def safe_next(params: Any) -> str:
    """Where to go after sign-in: a path of this desk only (never another site)."""
    target = str(params.get("next") or "/")
    return target if re.fullmatch(r"/[A-Za-z0-9/_\-.%]*", target) and "//" not in target else "/"


def _set_cookie(
    response: Response, request: Request, name: str, value: str, *, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def html_csp(html: bytes) -> str:
    """A report's own CSP: its inline styles, and its inline scripts by their hashes only."""
    scripts = re.findall(rb"<script>(.*?)</script>", html, flags=re.DOTALL)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts
    )
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src {hashes or chr(39) + 'none' + chr(39)}; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    )


def create_app(settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> Starlette:
    """The desk over ``settings``' data folder and ledger."""
    from pipelines.desk.pages import page_routes

    desk = Desk(settings, clock)
    routes = [
        *login_routes(desk),
        *page_routes(desk),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.desk = desk
    app.add_middleware(SecurityHeaders)
    return app
