"""Import a roster file (CSV or XLSX: units, members, kit) all or nothing."""

from __future__ import annotations

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from units.importing import RosterFileError, import_size_check, roster_import


class Command(BaseCommand):
    help = (
        "Import units, members and kit from a CSV or XLSX file (docs/roster.md). Every row "
        "is checked first; any bad row (printed with its row number) means nothing is "
        "written and the exit code is 1. --dry-run only checks and prints the counts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="a .csv or .xlsx file")
        parser.add_argument("--dry-run", action="store_true", help="check only, write nothing")
        parser.add_argument(
            "--as",
            dest="username",
            help="import as this staff user: their region scope applies and the history "
            "records them (default: the system, whole city, no user)",
        )

    def handle(self, *args, path: str, dry_run: bool, username: str | None, **options) -> None:
        user = None
        if username:
            try:
                user = get_user_model().objects.get(username=username)
            except get_user_model().DoesNotExist as exc:
                raise CommandError(f"--as: no user named {username!r}") from exc
        file = Path(path)
        try:
            import_size_check(size=file.stat().st_size)
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        except RosterFileError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        verbosity = options.get("verbosity", 1)
        bar = tqdm(total=0, unit="row", file=sys.stderr, disable=verbosity < 1, desc="check")

        def progress(phase: str, done: int, total: int) -> None:
            bar.set_description(phase)
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            report = roster_import(
                data=data, filename=file.name, user=user, dry_run=dry_run, progress=progress
            )
        except RosterFileError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        except PermissionError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        for sheet in report.sheets:
            self.stdout.write(
                f"{sheet.title} ({sheet.kind}): {sheet.rows} rows, {sheet.new} new, "
                f"{sheet.updated} updated, {sheet.unchanged} unchanged"
            )
        if report.errors:
            for e in report.errors:
                self.stderr.write(f"{e.sheet} row {e.row} [{e.field}]: {e.message}")
            raise CommandError(
                f"{len(report.errors)} bad rows: nothing was imported "
                f"(rows {', '.join(str(e.row) for e in report.errors[:20])}"
                f"{' ...' if len(report.errors) > 20 else ''})"
            )
        if report.committed:
            self.stdout.write(self.style.SUCCESS(f"Imported in {report.seconds:.1f} s."))
        else:
            self.stdout.write(f"Dry run: no errors, nothing written ({report.seconds:.1f} s).")
