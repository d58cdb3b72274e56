"""The desk's pages, each a thin view over the functions the command line calls: the inbox
(`tieout run`), open items (`todo`, `alias add`, `retry`, `settle`, `resolve`), layouts
(`layout accept`, `layout forget`), runs and reports (`runs`, `report`, `trace`), approvals
(`approve`) and sign-off (`signoff`). The forms' actions are in :mod:`pipelines.desk.actions`;
the work behind both, run in a worker thread, in :mod:`pipelines.desk.views` and
:mod:`pipelines.desk.layouts`. Each view takes the desk, the request, the signed-in session
and the form (a POST's, checked for its CSRF token by :func:`pipelines.desk.app.guarded`)."""

from __future__ import annotations

import os
import secrets
from functools import partial
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from pipelines.core.errors import InputError
from pipelines.desk import auth
from pipelines.desk.app import Desk, guarded, html_csp
from pipelines.ledger.desk import UPLOAD

REPORT_FILES = {".html": "text/html; charset=utf-8", ".xlsx": None, ".csv": None, ".json": None}
CHUNK = 1 << 20
REFRESH_S = 1  # how often the inbox page refreshes itself while a run is in progress


def field(form: FormData | None, name: str) -> str:
    value = form.get(name) if form is not None else None
    return value.strip() if isinstance(value, str) else ""


def done(session: auth.Session, where: str, *lines: str) -> Response:
    """Back to the page ``where``, saying ``lines`` there."""
    session.flashes.extend(line for line in lines if line)
    return RedirectResponse(where, status_code=303)


def inside(path: Path, folder: Path) -> Path | None:
    """``path`` when it is a regular file inside ``folder`` (links followed first), else None:
    the one rule every download passes."""
    try:
        real, root = path.resolve(strict=True), folder.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return real if real.is_relative_to(root) and real.is_file() else None


async def home(desk: Desk, request: Request, session: auth.Session, form: Any) -> Response:
    return RedirectResponse("/inbox", status_code=303)


# ---- Inbox ----------------------------------------------------------------------------------
async def inbox(desk: Desk, request: Request, session: auth.Session, form: Any) -> Response:
    from pipelines.desk.views import inbox_files

    waiting, dropped = await run_in_threadpool(inbox_files, desk)
    running = desk.runner.current
    return desk.render(
        request,
        "inbox.html.j2",
        waiting=waiting,
        dropped=dropped,
        running=running,
        refresh=REFRESH_S if running else None,
    )


async def _keep(desk: Desk, upload: UploadFile, limit: int) -> tuple[str, int, str]:
    """One uploaded file into the inbox: written under a name no run takes (a dot file,
    .part), then renamed, so the inbox only ever holds whole files, as a copy made by a person
    would leave it. Returns its safe name, size and sha256."""
    from pipelines.reading.grids import fingerprint
    from pipelines.runs.inbox import safe_name

    settings = desk.settings
    name = safe_name(upload.filename or "unnamed")
    temp = settings.inbox_dir / f".{secrets.token_hex(8)}.upload.part"
    size = 0
    try:
        with temp.open("xb") as out:
            while chunk := await upload.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise InputError(
                        f"{name}: larger than max_file_mb ({settings.max_file_mb:g} MB); "
                        "nothing was dropped"
                    )
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        sha = fingerprint(temp).sha256
        temp.replace(settings.inbox_dir / name)
    finally:
        temp.unlink(missing_ok=True)
    return name, size, sha


async def drop(desk: Desk, request: Request, session: auth.Session, form: FormData) -> Response:
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    if not files or not any(f.filename for f in files):
        return done(session, "/inbox", "choose a file to drop first")
    limit = int(desk.settings.max_file_mb * 1024 * 1024)
    desk.settings.inbox_dir.mkdir(parents=True, exist_ok=True)
    said = []
    for upload in files:
        name, size, sha = await _keep(desk, upload, limit)
        desk.record(session, UPLOAD, sha, name=name, bytes=size)
        said.append(f"{name} dropped ({size:,} bytes)")
    return done(session, "/inbox", *said)


async def take_in(desk: Desk, request: Request, session: auth.Session, form: Any) -> Response:
    """`tieout run` in the desk's run thread: the inbox page shows its progress, then what it
    said, to the one who started it."""
    from pipelines.desk.views import run_inbox

    started = desk.runner.start(
        session.name, partial(run_inbox, desk, session), session.flashes.extend
    )
    if not started:
        current = desk.runner.current
        who = current.by if current else "someone"
        return done(session, "/inbox", f"a run started by {who} is in progress: wait for it")
    return RedirectResponse("/inbox", status_code=303)


# ---- Runs and reports -----------------------------------------------------------------------
async def runs(desk: Desk, request: Request, session: auth.Session, form: Any) -> Response:
    from pipelines.desk.views import run_page

    rows, files, periods = await run_in_threadpool(run_page, desk)
    return desk.render(request, "runs.html.j2", rows=rows, files=files, periods=periods)


async def report_file(desk: Desk, request: Request, session: auth.Session, form: Any) -> Response:
    reports = desk.settings.reports_dir
    folder, name = request.path_params["folder"], request.path_params["name"]
    suffix = Path(name).suffix.lower()
    found = inside(reports / folder / name, reports)
    if found is None or suffix not in REPORT_FILES or "/" in folder + name:
        return Response("no such report file", status_code=404, media_type="text/plain")
    if suffix == ".html":
        html = found.read_bytes()
        return Response(
            html,
            media_type=REPORT_FILES[suffix],
            headers={"content-security-policy": html_csp(html)},
        )
    return FileResponse(found, filename=found.name, content_disposition_type="attachment")


async def archived(desk: Desk, request: Request, session: auth.Session, form: Any) -> Response:
    sha = str(request.path_params["sha256"])
    with desk.ledger(readonly=True) as ledger:
        known = ledger.file_of(sha) if len(sha) == 64 and sha.isalnum() else None
    moved_to = (known or {}).get("moved_to")
    found = inside(Path(str(moved_to)), desk.settings.data_dir) if moved_to else None
    if found is None:
        return Response("no such archived file", status_code=404, media_type="text/plain")
    return FileResponse(
        found,
        filename=found.name,
        media_type="application/octet-stream",
        content_disposition_type="attachment",
    )


async def trace(desk: Desk, request: Request, session: auth.Session, form: Any) -> Response:
    from pipelines.desk.views import trace_record

    query = str(request.query_params.get("q") or "").strip()[:500]
    found = await run_in_threadpool(trace_record, desk, query) if query else []
    return desk.render(request, "trace.html.j2", query=query, found=found)


def page_routes(desk: Desk) -> list[Route]:
    """Every page and form of the desk, behind sign-in (a form also behind its CSRF token and
    its role's permission, :func:`pipelines.desk.app.guarded`)."""
    from pipelines.desk import actions as act

    def page(
        path: str, view: Any, action: str | None = None, method: str = "GET", back: str = ""
    ) -> Route:
        """A page, or a form's action (``back``: the page it is posted from)."""
        return Route(
            path, guarded(desk, partial(view, desk), action, back or path), methods=[method]
        )

    return [
        page("/", home),
        page("/inbox", inbox),
        page("/inbox/drop", drop, auth.DROP, "POST", "/inbox"),
        page("/inbox/run", take_in, auth.DROP, "POST", "/inbox"),
        page("/items", act.items),
        page("/items/alias", act.alias, auth.CLEAR, "POST", "/items"),
        page("/items/retry", act.retry, auth.CLEAR, "POST", "/items"),
        page("/items/settle", act.settle, auth.CLEAR, "POST", "/items"),
        page("/items/resolve", act.resolve, auth.CLEAR, "POST", "/items"),
        page("/items/send-again", act.send_again, auth.CLEAR, "POST", "/items"),
        page("/layouts", act.layouts),
        page("/layouts/confirm", act.confirm, auth.CLEAR, "POST", "/layouts"),
        page("/layouts/forget", act.forget, auth.CLEAR, "POST", "/layouts"),
        page("/runs", runs),
        page("/reports/{folder}/{name}", report_file),
        page("/archive/{sha256}", archived),
        page("/trace", trace),
        page("/approvals", act.approvals),
        page("/approvals/approve", act.approve, auth.APPROVE, "POST", "/approvals"),
        page("/signoff", act.signoff, auth.SIGN_OFF, "POST", "/approvals"),
    ]
