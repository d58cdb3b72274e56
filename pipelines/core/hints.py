"""The words of every alias hint: which file a kind of name is aliased in, under the configured
data folder, and the one command that writes the alias, quoted so that it works as printed."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.references import REFERENCES, SHARED_NAMES, Read

# `tieout alias add KIND …` → the file under <data_dir>/mappings/ it writes, and → the
# reference list `tieout refs show` prints for it: the shared kinds of names, then each
# registered kind's (`Kind.name_kinds`), read when used.
ALIAS_FILES: Mapping[str, str] = Read(
    lambda: (
        {k: f for k, (f, _) in SHARED_NAMES.items()}
        | {k: n.file for k, n in REFERENCES.names().items()}
    )
)
REFS_KINDS: Mapping[str, str] = Read(
    lambda: (
        {k: r for k, (_, r) in SHARED_NAMES.items()}
        | {k: n.refs for k, n in REFERENCES.names().items()}
    )
)
DEFAULT_DATA_DIR = Path("data")
PLACEHOLDER = "<Propexo name>"


def shell_word(text: str) -> str:
    """``text`` as one shell word: in double quotes when that reads back exactly (a name with
    a comma or a space), else in single quotes."""
    if text and not re.search(r'["$`\\!]', text):
        return f'"{text}"'
    return shlex.quote(text)


@dataclass(frozen=True)
class AliasHints:
    """Hints for one data folder: a non-default folder is named in the command itself, so the
    command writes where the run that printed it reads."""

    data_dir: Path = DEFAULT_DATA_DIR

    @property
    def command(self) -> str:
        if self.data_dir == DEFAULT_DATA_DIR:
            return "tieout"
        return f"tieout --data-dir {shlex.quote(str(self.data_dir))}"

    @property
    def mappings_dir(self) -> Path:
        return self.data_dir / "mappings"

    def file(self, kind: str) -> Path:
        return self.mappings_dir / f"{ALIAS_FILES[kind]}.csv"

    def add(self, kind: str, name: str, target: str | None = None) -> str:
        """``tieout alias add KIND "NAME" "TARGET"``, ready to paste."""
        return (
            f"{self.command} alias add {kind} {shell_word(name)} "
            f"{shell_word(target or PLACEHOLDER)}"
        )

    def unknown(self, kind: str, name: str, target: str | None) -> str:
        """What to do about a name Propexo does not know: the command, and the file it
        writes; without a suggestion, where to find Propexo's names."""
        where = f"(it adds a line to {self.file(kind)})"
        if target is not None:
            return f"If it is, run: {self.add(kind, name, target)} {where}"
        return (
            f"If it is the same thing under another name, run: {self.add(kind, name)} {where}; "
            f"Propexo's names: {self.command} refs show {REFS_KINDS[kind]}"
        )

    def ambiguous(self, kind: str, name: str) -> str:
        """Two Propexo records answer to one name: an alias cannot tell them apart."""
        return (
            "an alias cannot tell them apart; see them with "
            f"{self.command} refs show {REFS_KINDS[kind]} --search {shell_word(name)}"
        )

    def charge_column(self, header: str, code: str | None = None) -> str:
        """How to make a column of amounts a charge: alias its header to a charge code (the
        Propexo code it is spelled like, when one is)."""
        return (
            f"run: {self.add('charge_code', header, code or '<Propexo charge code>')} "
            f"(it adds a line to {self.file('charge_code')})"
        )


# What a conflict or a question about a posted record asks of a person. Never "give the bill
# a new number" or "reverse it": either would post a record twice or undo a correct one.
SETTLE_ITEM = "then settle this open item"
CORRECT_INVOICE = (
    f"if this file is right, correct the invoice in Rent Manager, {SETTLE_ITEM}; "
    "if the posted invoice is right, settle this item and change nothing"
)
SECOND_CHARGE_ADVICE = (
    "if it is the same one, settle this item and nothing is posted; if it is a second one, "
    "enter it in Rent Manager, then settle this item (tieout never posts it by itself)"
)
