"""The desk's form helpers, in process: a proposal's roles read only from well-formed fields,
text fields stripped and anything else empty, a form's outcome said on the page it came from,
and a download served only from inside its folder (links followed first)."""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import FormData, UploadFile

from pipelines.desk.actions import chosen_roles
from pipelines.desk.auth import Session
from pipelines.desk.pages import done, field, inside


def test_roles_are_read_from_role_fields_only_by_their_column_number() -> None:
    form = FormData(
        [
            ("role.0", " unit "),
            ("role.12", "charge"),
            ("role.x", "credit"),
            ("role.12345", "charge"),  # past any sheet's width: not a column
            ("xrole.3", "unit"),
            ("item_id", "7"),
        ]
    )
    assert chosen_roles(form) == {0: "unit", 12: "charge"}
    assert chosen_roles(FormData()) == {}


def test_a_field_is_stripped_text_and_an_upload_or_nothing_is_empty() -> None:
    upload = UploadFile(file=None, filename="x.csv")  # type: ignore[arg-type]
    form = FormData([("note", "  checked with Pat \n"), ("file", upload)])
    assert field(form, "note") == "checked with Pat"
    assert field(form, "file") == ""
    assert field(form, "absent") == ""
    assert field(None, "note") == ""


def test_a_form_s_outcome_is_said_on_the_page_it_came_from() -> None:
    session = Session("pat", "clerk", "csrf", 0.0)
    response = done(session, "/layouts", "layout 3 withdrawn", "", "its files are held again")
    assert response.status_code == 303
    assert response.headers["location"] == "/layouts"
    assert session.flashes == ["layout 3 withdrawn", "its files are held again"]


def test_a_download_is_served_only_from_inside_its_folder(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    report = reports / "run-1.html"
    report.write_text("<html></html>")
    secret = tmp_path / "tieout.toml"
    secret.write_text("token = 'x'")
    (reports / "link").symlink_to(secret)
    assert inside(report, reports) == report.resolve()
    assert inside(reports / ".." / "tieout.toml", reports) is None
    assert inside(reports / "link", reports) is None
    assert inside(reports / "absent.html", reports) is None
    assert inside(reports, reports) is None  # a folder is not a download
    assert inside(report, tmp_path / "no-such-folder") is None
