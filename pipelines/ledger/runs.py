"""Runs, the files they processed, files they refused to take again, and rejected rows."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd

from pipelines.core.models import FileOutcome, Issue, utcnow
from pipelines.ledger.database import Database

# What a rejected row is to the report: the columns of `rejects` it reads back.
REJECT_COLUMNS = (
    "source_file",
    "source_row",
    "code",
    "message",
    "column_name",
    "value",
    "amount_text",
    "amount_cents",
)


class RunStore:
    """The ``runs``, ``files``, ``drops`` and ``rejects`` tables."""

    db: Database

    def start_run(self, run_id: str, *, dry_run: bool, pid: int) -> None:
        self.db.execute(
            "INSERT INTO runs(run_id, started_at, dry_run, pid) VALUES (?, ?, ?, ?)",
            (run_id, utcnow(), int(dry_run), pid),
        )

    def finish_run(self, run_id: str, exit_code: int) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at = ?, exit_code = ? WHERE run_id = ?",
            (utcnow(), exit_code, run_id),
        )

    def runs(self) -> pd.DataFrame:
        return self.db.read_frame("SELECT * FROM runs ORDER BY started_at")

    def last_run_id(self) -> str | None:
        row = self.db.execute(
            "SELECT run_id FROM runs WHERE dry_run = 0 ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        return str(row[0]) if row else None

    def file_run(self, sha256: str) -> str | None:
        """The run that already processed a file with this content, if any."""
        row = self.db.execute("SELECT run_id FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return str(row[0]) if row else None

    def record_file(self, run_id: str, outcome: FileOutcome, moved_to: str | None) -> None:
        insert_file_row(self.db, "files", run_id, outcome, moved_to)

    def record_drop(
        self, run_id: str, name: str, sha256: str | None, reason: str, first_run_id: str | None
    ) -> None:
        self.db.execute(
            "INSERT INTO drops(run_id, name, sha256, reason, first_run_id, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, name, sha256, reason, first_run_id, utcnow()),
        )

    def files(self, run_id: str) -> pd.DataFrame:
        return self.db.read_frame(
            "SELECT * FROM files WHERE run_id = ? ORDER BY processed_at", (run_id,)
        )

    def files_of_period(self, period: str) -> pd.DataFrame:
        """Every file whose billing period is in ``period`` (``YYYY-MM``), whichever run took
        it, in the order they were processed."""
        month = f"{period}%"
        # A file without a period of its own (a bill export) is of the month its records are
        # dated in; one with neither, of the month it was processed.
        return self.db.read_frame(
            "SELECT * FROM files WHERE period LIKE ? OR (period IS NULL AND (sha256 IN "
            "(SELECT file_sha256 FROM records WHERE transaction_date LIKE ?) OR (processed_at "
            "LIKE ? AND sha256 NOT IN (SELECT file_sha256 FROM records WHERE file_sha256 IS "
            "NOT NULL)))) ORDER BY processed_at",
            (month, month, month),
        )

    def rejects_of_files(self, shas: Iterable[str]) -> pd.DataFrame:
        """Each file's rejected rows as its latest run saw them."""
        shas = list(shas)
        if not shas:
            return pd.DataFrame(columns=list(REJECT_COLUMNS))
        marks = ", ".join("?" * len(shas))
        return self.db.read_frame(
            "SELECT source_file, source_row, code, message, column_name, value, amount_text, "
            f"amount_cents FROM rejects r WHERE file_sha256 IN ({marks}) AND run_id = "
            "(SELECT MAX(run_id) FROM rejects l WHERE l.file_sha256 = r.file_sha256) "
            "ORDER BY source_file, source_row, id",
            tuple(shas),
        )

    def drops(self, run_id: str) -> pd.DataFrame:
        return self.db.read_frame("SELECT * FROM drops WHERE run_id = ? ORDER BY id", (run_id,))

    def add_rejects(
        self,
        run_id: str,
        sha256: str | None,
        issues: Iterable[Issue],
        amounts: dict[int, str] | None = None,
        cents: dict[int, int] | None = None,
    ) -> None:
        """Rejected rows' reasons; ``amounts``: each row's amount as the file shows it;
        ``cents``: as tieout read it (a row whose amount cannot be read has none)."""
        amounts = amounts or {}
        cents = cents or {}
        rows = [
            (
                run_id,
                sha256,
                i.source_file,
                i.source_row,
                i.code.value,
                i.message,
                i.column,
                i.value,
                amounts.get(i.source_row),
                cents.get(i.source_row),
            )
            for i in issues
        ]
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO rejects(run_id, file_sha256, source_file, source_row, code, message, "
                "column_name, value, amount_text, amount_cents) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def rejects(self, run_id: str) -> pd.DataFrame:
        return self.db.read_frame(
            "SELECT source_file, source_row, code, message, column_name, value, amount_text, "
            "amount_cents FROM rejects WHERE run_id = ? ORDER BY source_file, source_row, id",
            (run_id,),
        )

    def add_signoff(self, subject: str, by: str, note: str | None = None) -> dict[str, str | None]:
        """A person's review of a run's or a period's workpaper: an event, never an edit."""
        at = utcnow()
        self.db.execute(
            "INSERT INTO signoffs(subject, by_name, at, note) VALUES (?, ?, ?, ?)",
            (subject, by, at, note),
        )
        return {"by": by, "at": at, "note": note}

    def signoffs(self, subject: str) -> list[dict[str, str | None]]:
        """The reviews of a run or a period (``period-YYYY-MM``), oldest first."""
        rows = self.db.execute(
            "SELECT by_name, at, note FROM signoffs WHERE subject = ? ORDER BY id", (subject,)
        ).fetchall()
        return [{"by": str(r[0]), "at": str(r[1]), "note": r[2]} for r in rows]


# A file's accounting in a run, as the ``files`` table (first take) and ``file_passes`` (a
# retry) both hold it.
FILE_COLUMNS = (
    "sha256, name, run_id, profile, kind, rows_read, rows_used, rows_rejected, rows_skipped, "
    "skipped_by_kind, source_total_cents, rejected_total_cents, previously_posted_cents, "
    "moved_to, processed_at, columns_not_charged, file_totals, period, period_source, sheet"
)


def insert_file_row(
    db: Database, table: str, run_id: str, outcome: FileOutcome, moved_to: str | None
) -> None:
    """One file's accounting into ``table`` (``files`` or ``file_passes``)."""
    db.execute(
        f"INSERT INTO {table}({FILE_COLUMNS}) VALUES ({', '.join('?' * 20)})",
        (
            outcome.sha256,
            outcome.name,
            run_id,
            outcome.profile,
            outcome.kind,
            outcome.rows_read,
            outcome.rows_used,
            outcome.rows_rejected,
            outcome.rows_skipped,
            json.dumps(outcome.skipped_by_kind),
            outcome.source_total_cents,
            outcome.rejected_total_cents,
            outcome.previously_posted_cents,
            moved_to,
            utcnow(),
            json.dumps(list(outcome.columns_not_charged)),
            json.dumps(list(outcome.file_totals)),
            outcome.period,
            outcome.period_source,
            outcome.sheet,
        ),
    )
