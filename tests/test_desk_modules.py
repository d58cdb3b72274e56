"""The desk's page helpers (desk.pages), its views' reads of the ledger and the inbox
(desk.views) and `tieout desk`'s command group (cli.desk), directly, without a browser."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from starlette.datastructures import FormData

from pipelines.cli.desk import users as users_group
from pipelines.core.config import load_settings
from pipelines.desk.app import Desk
from pipelines.desk.layouts import layout_page
from pipelines.desk.pages import field, inside
from pipelines.desk.views import inbox_files
from pipelines.ledger import Ledger
from tests.conftest import SAMPLES


def test_a_form_field_is_its_trimmed_text_or_empty() -> None:
    form = FormData([("name", "  Acme  "), ("file", "x")])
    assert field(form, "name") == "Acme"
    assert field(form, "missing") == ""
    assert field(None, "name") == ""


def test_a_download_is_only_a_regular_file_inside_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    report = folder / "r.html"
    report.write_text("<p>ok</p>")
    secret = tmp_path / "ledger.sqlite"
    secret.write_text("no")
    (folder / "link").symlink_to(secret)
    assert inside(report, folder) == report.resolve()
    assert inside(folder / ".." / "ledger.sqlite", folder) is None  # a way out
    assert inside(folder / "link", folder) is None  # a link out is followed first
    assert inside(folder, folder) is None  # not a file
    assert inside(folder / "gone.html", folder) is None


def test_the_inbox_and_layout_pages_read_what_waits(tmp_path: Path) -> None:
    settings = replace(load_settings(env={}), data_dir=tmp_path / "data")
    settings.inbox_dir.mkdir(parents=True)
    Ledger(settings.ledger).close()  # a ledger, as after `tieout ledger migrate`
    desk = Desk(settings)
    assert inbox_files(desk) == ([], [])
    shutil.copy2(SAMPLES / "vendor_bills.csv", settings.inbox_dir / "vendor_bills.csv")
    waiting, dropped = inbox_files(desk)
    assert dropped == []
    assert waiting == [
        {
            "name": "vendor_bills.csv",
            "bytes": (SAMPLES / "vendor_bills.csv").stat().st_size,
            "state": "waiting",
            "why": "the next run takes it in",
        }
    ]
    assert layout_page(desk) == ([], [])  # nothing held, nothing confirmed


def test_the_desk_users_group_has_its_commands() -> None:
    assert {"add", "list", "remove"} <= set(users_group.commands)
