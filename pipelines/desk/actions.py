"""The desk's open items, layouts and approvals pages and their forms: each form's action is
the command line's (`alias add`, `retry`, `settle`, `resolve --present|--absent|--send-again`,
`layout accept`, `layout forget`, `approve`, `signoff`), done as the signed-in user, who is
told what it did on the page the form was posted from (routes: :mod:`pipelines.desk.pages`)."""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from pipelines.core.errors import InputError
from pipelines.desk import auth
from pipelines.desk.app import Desk, forbidden
from pipelines.desk.pages import done, field


# ---- Open items -----------------------------------------------------------------------------
async def items(desk: Desk, request: Request, session: auth.Session, form: Any) -> Response:
    from pipelines.desk.views import item_groups

    groups, total, offers_error = await run_in_threadpool(item_groups, desk)
    return desk.render(
        request, "items.html.j2", groups=groups, total=total, offers_error=offers_error
    )


async def alias(desk: Desk, request: Request, session: auth.Session, form: FormData) -> Response:
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


async def retry(desk: Desk, request: Request, session: auth.Session, form: FormData) -> Response:
    from pipelines.desk.views import retry_file

    lines = await run_in_threadpool(retry_file, desk, session, field(form, "file"))
    return done(session, "/items", *lines)


async def settle(desk: Desk, request: Request, session: auth.Session, form: FormData) -> Response:
    from pipelines.cli.items import open_items, settle_items

    item_id, note = field(form, "item_id"), field(form, "note")
    if not note:
        return done(session, "/items", "say in the note what was done, or why it is closed")
    found = [i for i in open_items(desk.settings) if i["item_id"] == item_id]
    if (
        found
        and found[0]["cause"] == "conflict"
        and not auth.may(session.role, auth.SETTLE_CONFLICT)
    ):
        return forbidden("only an approver settles a conflict")
    await run_in_threadpool(settle_items, desk.settings, [item_id], by=session.name, note=note)
    desk.record(session, "settle", item_id, note=note)
    return done(session, "/items", f"{item_id} settled by {session.name}")


async def resolve(desk: Desk, request: Request, session: auth.Session, form: FormData) -> Response:
    """`tieout resolve KEY --present [--rm-id ID]` or `--absent`: a record in doubt, settled by
    what the person found in Rent Manager."""
    from pipelines.desk.views import resolve_record

    lines = await run_in_threadpool(
        resolve_record,
        desk,
        session,
        field(form, "record_key"),
        field(form, "found"),
        field(form, "rm_id"),
        field(form, "note"),
    )
    return done(session, "/items", *lines)


async def send_again(
    desk: Desk, request: Request, session: auth.Session, form: FormData
) -> Response:
    """`tieout resolve KEY --send-again`: a write Propexo refused, made ready for the next run."""
    from pipelines.desk.views import send_record_again

    lines = await run_in_threadpool(
        send_record_again, desk, session, field(form, "record_key"), field(form, "note")
    )
    return done(session, "/items", *lines)


# ---- Layouts --------------------------------------------------------------------------------
async def layouts(desk: Desk, request: Request, session: auth.Session, form: Any) -> Response:
    from pipelines.desk.layouts import layout_page

    held, confirmed = await run_in_threadpool(layout_page, desk)
    return desk.render(request, "layouts.html.j2", held=held, confirmed=confirmed)


def chosen_roles(form: FormData) -> dict[int, str]:
    """The role chosen for each column of a proposal's table (fields ``role.N``)."""
    roles = {}
    for name in form:
        found = re.fullmatch(r"role\.(\d{1,4})", name)
        if found:
            roles[int(found.group(1))] = field(form, name)
    return roles


async def confirm(desk: Desk, request: Request, session: auth.Session, form: FormData) -> Response:
    """`tieout layout accept FILE`, with the roles changed on the page as its corrections."""
    from pipelines.desk.layouts import confirm_layout

    lines = await run_in_threadpool(
        confirm_layout, desk, session, field(form, "item_id"), chosen_roles(form)
    )
    return done(session, "/layouts", *lines)


async def forget(desk: Desk, request: Request, session: auth.Session, form: FormData) -> Response:
    """`tieout layout forget ID`: files of that layout are held again."""
    layout_id = field(form, "layout_id")
    if not layout_id.isdigit():
        return done(session, "/layouts", "choose a confirmed layout to withdraw")
    with desk.ledger() as ledger:
        if not ledger.forget_layout(int(layout_id)):
            raise InputError(f"no confirmed layout {layout_id}: the list below shows them")
    desk.record(session, "layout_forget", layout_id)
    return done(session, "/layouts", f"layout {layout_id} withdrawn: its files are held again")


# ---- Approvals and sign-off -----------------------------------------------------------------
async def approvals(desk: Desk, request: Request, session: auth.Session, form: Any) -> Response:
    from pipelines.desk.views import approval_page

    held, periods, run_ids = await run_in_threadpool(approval_page, desk)
    return desk.render(request, "approvals.html.j2", held=held, periods=periods, run_ids=run_ids)


async def approve(desk: Desk, request: Request, session: auth.Session, form: FormData) -> Response:
    from pipelines.desk.views import approve_file

    lines = await run_in_threadpool(approve_file, desk, session, field(form, "sha256"))
    return done(session, "/approvals", *lines)


async def signoff(desk: Desk, request: Request, session: auth.Session, form: FormData) -> Response:
    """`tieout signoff SUBJECT --by USER --note N [--with-open-items]`."""
    from pipelines.desk.views import sign

    lines = await run_in_threadpool(
        sign,
        desk,
        session,
        field(form, "subject"),
        field(form, "note"),
        field(form, "with_open_items") == "yes",
    )
    return done(session, "/approvals", *lines)
