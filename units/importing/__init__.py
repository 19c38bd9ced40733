"""Bulk import and export of the roster: units, members and kit, as CSV or XLSX.

Import is two passes over the file, and the second only runs if the first
found nothing wrong:

1. **Check** every row (``roster_import(..., dry_run=True)`` stops here): parse,
   validate, resolve natural keys (unit code, member phone, unit code + kit
   kind) against the database, check the user's scope, and sort each row into
   new / updated / unchanged. Every bad row is reported (sheet, row number as
   Excel shows it, column, message), not just the first.
2. **Write** all of it in one transaction with bulk inserts and updates (plus
   their audit history rows, by the importing user), then one "reload all"
   roster change for the dispatch index. Nothing is written if any row is bad.

A CSV file holds one table; an XLSX workbook may hold several (units first,
then members, then kit, whatever the sheet order), so a whole city goes in as
one all-or-nothing import. The kind of each table is told by its sheet name
or its columns. Export writes the same columns, so an exported file can be
edited and imported back.
"""

from __future__ import annotations

from .cells import (
    CellError,
    cn_mobile_validate,
    phone_normalize,
)
from .checking import (
    roster_import,
)
from .columns import (
    CN_MOBILE,
    COLUMNS,
    EQUIPMENT,
    KEY_CHUNK,
    KINDS,
    MAX_ROWS,
    MEMBER,
    MODELS,
    SAMPLE_SIZE,
    SHEET_TITLE_ALIASES,
    SHEET_TITLES,
    UNIT,
    WRITE_BATCH,
    Column,
    ProgressCallback,
)
from .export import (
    import_errors_csv,
    roster_export_csv,
    roster_export_rows,
    roster_export_xlsx,
)
from .jobs import (
    JobProgress,
    import_job_confirm,
    import_job_create,
    import_job_get,
    import_job_list,
    import_job_run,
    import_job_status,
    progress_key,
)
from .reading import (
    Table,
    import_size_check,
    roster_file_read,
)
from .reports import (
    ImportReport,
    RosterFileError,
    RowError,
    SheetReport,
)

__all__ = [
    "CN_MOBILE",
    "COLUMNS",
    "CellError",
    "Column",
    "EQUIPMENT",
    "ImportReport",
    "JobProgress",
    "KEY_CHUNK",
    "KINDS",
    "MAX_ROWS",
    "MEMBER",
    "MODELS",
    "ProgressCallback",
    "RosterFileError",
    "RowError",
    "SAMPLE_SIZE",
    "SHEET_TITLES",
    "SHEET_TITLE_ALIASES",
    "SheetReport",
    "Table",
    "UNIT",
    "WRITE_BATCH",
    "cn_mobile_validate",
    "import_errors_csv",
    "import_job_confirm",
    "import_job_create",
    "import_job_get",
    "import_job_list",
    "import_job_run",
    "import_job_status",
    "import_size_check",
    "phone_normalize",
    "progress_key",
    "roster_export_csv",
    "roster_export_rows",
    "roster_export_xlsx",
    "roster_file_read",
    "roster_import",
]
