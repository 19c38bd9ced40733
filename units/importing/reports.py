"""What an import reports: file-level errors, row errors, per-sheet counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --- errors and reports ------------------------------------------------------------


class RosterFileError(Exception):
    """The file as a whole cannot be imported (size, format, encoding, columns)."""

    def __init__(self, messages: list[str] | str):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("; ".join(self.messages))


@dataclass(frozen=True)
class RowError:
    sheet: str
    row: int | None  # as Excel numbers it (the header is row 1); None: the whole sheet
    field: str  # the column header
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "row": self.row, "field": self.field, "message": self.message}


@dataclass
class SheetReport:
    title: str
    kind: str
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "kind": self.kind,
            "rows": self.rows,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "ignored_columns": self.ignored_columns,
            "sample": self.sample,
        }


@dataclass
class ImportReport:
    dry_run: bool
    committed: bool = False
    encoding: str = ""
    sheets: list[SheetReport] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "committed": self.committed,
            "encoding": self.encoding,
            "sheets": [s.as_dict() for s in self.sheets],
            "errors": [e.as_dict() for e in self.errors],
            "error_count": len(self.errors),
            "seconds": round(self.seconds, 2),
        }
