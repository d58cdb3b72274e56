"""The desk's pages, each a thin view over the functions the command line calls: the inbox
(`tieout run`), open items (`todo`, `alias add`, `retry`, `settle`), layouts (`layout accept`),
runs and reports (`runs`, `report`, `trace`), approvals (`approve`) and sign-off (`signoff`)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from pipelines.core.errors import InputError
from pipelines.desk import auth
from pipelines.desk.app import Desk, forbidden, guarded, html_csp
from pipelines.ledger.desk import UPLOAD

REPORT_FILES = {".html": "text/html; charset=utf-8", ".xlsx": None, ".csv": None, ".json": None}
CHUNK = 1 << 20


def field(form: FormData | None, name: str) -> str:
    value = form.get(name) if form is not None else None
    return value.strip() if isinstance(value, str) else ""


def inside(path: Path, folder: Path) -> Path | None:
    """``path`` when it is a regular file inside ``folder`` (links followed first), else None:
    the one rule every download passes."""
    try:
        real, root = path.resolve(strict=True), folder.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return real if real.is_relative_to(root) and real.is_file() else None


def page_routes(desk: Desk) -> list[Route]:  # noqa: PLR0915 - one closure per page
    settings = desk.settings

    def done(session: auth.Session, where: str, *lines: str) -> Response:
        session.flashes.extend(line for line in lines if line)
        return RedirectResponse(where, status_code=303)

    async def home(request: Request, session: auth.Session, form: FormData | None) -> Response:
        return RedirectResponse("/inbox", status_code=303)

    # ---- Inbox ------------------------------------------------------------------------------
    async def inbox(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.desk.views import inbox_files

        waiting, dropped = await run_in_threadpool(inbox_files, desk)
        return desk.render(request, "inbox.html.j2", waiting=waiting, dropped=dropped)

    async def drop(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.reading.grids import fingerprint
        from pipelines.runs.inbox import safe_name

        files = [f for f in (form.getlist("files") if form else []) if isinstance(f, UploadFile)]
        if not files or not any(f.filename for f in files):
            return done(session, "/inbox", "choose a file to drop first")
        limit = int(settings.max_file_mb * 1024 * 1024)
        said = []
        settings.inbox_dir.mkdir(parents=True, exist_ok=True)
        for upload in files:
            name = safe_name(upload.filename or "unnamed")
            # Written under a name no run takes (a dot file, .part), then renamed: the inbox only
            # ever holds whole files, as a copy made by a person would leave it.
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
                target = settings.inbox_dir / name
                sha = fingerprint(temp).sha256
                temp.replace(target)
            finally:
                temp.unlink(missing_ok=True)
            desk.record(session, UPLOAD, sha, name=name, bytes=size)
            said.append(f"{name} dropped ({size:,} bytes)")
        return done(session, "/inbox", *said)

    async def take_in(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.desk.views import run_inbox

        lines = await run_in_threadpool(run_inbox, desk, session)
        return done(session, "/inbox", *lines)

    # ---- Open items -------------------------------------------------------------------------
    async def items(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.desk.views import item_groups

        groups, total, offers_error = await run_in_threadpool(item_groups, desk)
        return desk.render(
            request, "items.html.j2", groups=groups, total=total, offers_error=offers_error
        )

    async def alias(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.desk.views import add_alias

        lines = await run_in_threadpool(
            add_alias,
            desk,
            session,
            field(form, "kind"),
            field(form, "name"),
            field(form, "target"),
            field(form, "file"),
        )
        return done(session, "/items", *lines)

    async def retry(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.desk.views import retry_file

        lines = await run_in_threadpool(retry_file, desk, session, field(form, "file"))
        return done(session, "/items", *lines)

    async def settle(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.cli.items import open_items, settle_items

        item_id, note = field(form, "item_id"), field(form, "note")
        if not note:
            return done(session, "/items", "say in the note what was done, or why it is closed")
        found = [i for i in open_items(settings) if i["item_id"] == item_id]
        if (
            found
            and found[0]["cause"] == "conflict"
            and not auth.may(session.role, auth.SETTLE_CONFLICT)
        ):
            return forbidden("only an approver settles a conflict")
        await run_in_threadpool(settle_items, settings, [item_id], by=session.name, note=note)
        desk.record(session, "settle", item_id, note=note)
        return done(session, "/items", f"{item_id} settled by {session.name}")

    # ---- Layouts ----------------------------------------------------------------------------
    async def layouts(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.desk.views import layout_page

        held, confirmed = await run_in_threadpool(layout_page, desk)
        return desk.render(request, "layouts.html.j2", held=held, confirmed=confirmed)

    async def confirm(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.desk.views import confirm_layout

        lines = await run_in_threadpool(confirm_layout, desk, session, field(form, "item_id"))
        return done(session, "/layouts", *lines)

    async def forget(request: Request, session: auth.Session, form: FormData | None) -> Response:
        """`tieout layout forget ID`: files of that layout are held again."""
        layout_id = field(form, "layout_id")
        if not layout_id.isdigit():
            return done(session, "/layouts", "choose a confirmed layout to withdraw")
        with desk.ledger() as ledger:
            if not ledger.forget_layout(int(layout_id)):
                raise InputError(f"no confirmed layout {layout_id}: the list below shows them")
        desk.record(session, "layout_forget", layout_id)
        return done(session, "/layouts", f"layout {layout_id} withdrawn: its files are held again")

    # ---- Runs and reports -------------------------------------------------------------------
    async def runs(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.desk.views import run_page

        rows, files, periods = await run_in_threadpool(run_page, desk)
        return desk.render(request, "runs.html.j2", rows=rows, files=files, periods=periods)

    async def report_file(
        request: Request, session: auth.Session, form: FormData | None
    ) -> Response:
        folder, name = request.path_params["folder"], request.path_params["name"]
        suffix = Path(name).suffix.lower()
        found = inside(settings.reports_dir / folder / name, settings.reports_dir)
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

    async def archived(request: Request, session: auth.Session, form: FormData | None) -> Response:
        sha = str(request.path_params["sha256"])
        with desk.ledger(readonly=True) as ledger:
            known = ledger.file_of(sha) if len(sha) == 64 and sha.isalnum() else None
        moved_to = (known or {}).get("moved_to")
        found = inside(Path(str(moved_to)), settings.data_dir) if moved_to else None
        if found is None:
            return Response("no such archived file", status_code=404, media_type="text/plain")
        return FileResponse(
            found,
            filename=found.name,
            media_type="application/octet-stream",
            content_disposition_type="attachment",
        )

    async def trace(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.desk.views import trace_record

        query = str(request.query_params.get("q") or "").strip()[:500]
        found = await run_in_threadpool(trace_record, desk, query) if query else []
        return desk.render(request, "trace.html.j2", query=query, found=found)

    # ---- Approvals and sign-off -------------------------------------------------------------
    async def approvals(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.desk.views import approval_page

        held, periods, run_ids = await run_in_threadpool(approval_page, desk)
        return desk.render(
            request, "approvals.html.j2", held=held, periods=periods, run_ids=run_ids
        )

    async def approve(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.desk.views import approve_file

        lines = await run_in_threadpool(approve_file, desk, session, field(form, "sha256"))
        return done(session, "/approvals", *lines)

    async def signoff(request: Request, session: auth.Session, form: FormData | None) -> Response:
        from pipelines.kinds import registered
        from pipelines.reporting.publish import sign_off

        subject = field(form, "subject")
        key, review, _, _ = await run_in_threadpool(
            sign_off, settings, subject, session.name, field(form, "note") or None, registered()
        )
        desk.record(session, "sign_off", key)
        at = str(review["at"])[:19].replace("T", " ")
        return done(session, "/approvals", f"{key}: signed off by {review['by']} at {at} UTC")

    def page(
        path: str, view: Any, action: str | None = None, method: str = "GET", back: str = ""
    ) -> Route:
        """A page, or a form's action (``back``: the page it is posted from)."""
        return Route(path, guarded(desk, view, action, back or path), methods=[method])

    return [
        page("/", home),
        page("/inbox", inbox),
        page("/inbox/drop", drop, auth.DROP, "POST", "/inbox"),
        page("/inbox/run", take_in, auth.DROP, "POST", "/inbox"),
        page("/items", items),
        page("/items/alias", alias, auth.CLEAR, "POST", "/items"),
        page("/items/retry", retry, auth.CLEAR, "POST", "/items"),
        page("/items/settle", settle, auth.CLEAR, "POST", "/items"),
        page("/layouts", layouts),
        page("/layouts/confirm", confirm, auth.CLEAR, "POST", "/layouts"),
        page("/layouts/forget", forget, auth.CLEAR, "POST", "/layouts"),
        page("/runs", runs),
        page("/reports/{folder}/{name}", report_file),
        page("/archive/{sha256}", archived),
        page("/trace", trace),
        page("/approvals", approvals),
        page("/approvals/approve", approve, auth.APPROVE, "POST", "/approvals"),
        page("/signoff", signoff, auth.SIGN_OFF, "POST", "/approvals"),
    ]
