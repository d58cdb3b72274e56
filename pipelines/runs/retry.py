"""`tieout retry`: which archived copies to read again, each the version its run read (sha256
checked), for the open items a retry can settle."""

from __future__ import annotations

from pathlib import Path

from pipelines.core.config import Settings
from pipelines.core.errors import InputError
from pipelines.core.versions import locate
from pipelines.ledger import Ledger
from pipelines.reading.grids import fingerprint
from pipelines.runs.items import IN_INBOX, RETRYABLE


def retry_files(settings: Settings, target: str | None, *, every: bool) -> list[Path]:
    """The archived copies to read again: of the files with open items that a retry can settle
    (rejected rows, unknown names, …), those of run ``target``, or the file ``target`` (its
    name, or the path of a copy), or ``every`` one."""
    if (target is None) == (not every):
        raise InputError("say what to retry: a RUN_ID, a FILE, or --all (one of them)")
    with Ledger(settings.ledger, readonly=True) as ledger:
        if target is None:
            chosen = ledger.items()
        elif target in set(ledger.runs()["run_id"].astype(str)):
            chosen = ledger.items(run_id=target)
        else:
            # The name `tieout todo` shows (a refused file is in no run's files), a file taken
            # in under that name, or the path of a copy.
            shas = {
                str(i["file_sha256"])
                for i in ledger.items()
                if i["file_sha256"] and target in (i["file_name"], i["detail"].get("path"))
            }
            shas |= set(ledger.files_named(target)["sha256"].astype(str))
            path = Path(target)
            if path.is_file():
                shas.add(fingerprint(path).sha256)
            if not shas:
                raise InputError(
                    f"{target}: no run of that id and no file of that name or content in the "
                    "ledger; `tieout todo` lists what is open"
                )
            chosen = [i for i in ledger.items() if i["file_sha256"] in shas]
        # Each file's copy: where the run moved it (a refused file: beside its errors file).
        copies: dict[str, tuple[str, str | None]] = {}
        for item in chosen:
            sha = item["file_sha256"]
            if item["cause"] not in RETRYABLE or item["cause"] in IN_INBOX:
                continue  # a held file lies in the inbox: the next run takes it
            if not sha or sha in copies:
                continue
            known = ledger.file_of(str(sha))
            moved = known.get("moved_to") if known else item["detail"].get("path")
            copies[str(sha)] = (str(item["file_name"]), str(moved) if moved else None)
        paths: list[Path] = []
        for sha, (name, moved) in copies.items():
            where = locate(moved, sha)  # the version that run read, sha256 checked
            if where is None and moved and Path(moved).is_file():
                raise InputError(
                    f"{moved} has changed since it was archived; drop the corrected file "
                    f"into {settings.inbox_dir} instead (it supersedes the earlier one)"
                )
            if where is None:
                raise InputError(
                    f"the archived copy of {name} is not at {moved or 'a known place'}; drop "
                    f"the file into {settings.inbox_dir} instead"
                )
            paths.append(where)
    return paths
