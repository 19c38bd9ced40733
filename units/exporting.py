"""Cells that leave the system in a spreadsheet: never a live formula (issue 10, hole 2).

A member named ``=HYPERLINK(...)`` or ``=cmd|' /C calc'!A0`` is harmless in our
pages but runs as a formula in whoever opens an export in Excel or WPS. Every
exporter (roster CSV/XLSX, the import-errors CSV, the review exports) writes
its cells through this module:

- text starting with ``= + - @``, TAB or CR gets a leading single quote, as
  OWASP's CSV-injection guidance says, in CSV and XLSX alike (an XLSX is often
  saved again as CSV);
- in XLSX, text is always written as a string cell, never as a formula;
- numbers, dates and booleans stay what they are: only text is touched, so a
  negative count stays a number and ``+8613...`` as text gets the quote.

Import strips that one quote again (``unquote``), so an exported roster
imports back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell_safe(value: Any) -> Any:
    """``value`` as a spreadsheet may show it: text that would start a formula is quoted."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unquote(text: str) -> str:
    """Undo ``cell_safe`` on text read back from an exported file."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text


def csv_row(row: Iterable[Any]) -> list[Any]:
    """A row for ``csv.writer``: blanks for None, every cell through ``cell_safe``."""
    return ["" if v is None else cell_safe(v) for v in row]


def xlsx_row(sheet, row: Iterable[Any]) -> list[Any]:
    """A row for a write-only openpyxl sheet's ``append``: text cells typed as strings."""
    # Imported here and not at the top: openpyxl costs startup time, and only
    # someone exporting a workbook needs it (the CSV paths do not).
    from openpyxl.cell import WriteOnlyCell

    out: list[Any] = []
    for value in row:
        if isinstance(value, str):
            cell = WriteOnlyCell(sheet, value=cell_safe(value))
            cell.data_type = "s"  # openpyxl would make "=..." a formula cell
            out.append(cell)
        else:
            out.append(value)
    return out
