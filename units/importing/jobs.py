"""Import jobs: an uploaded file previewed and committed by a Celery worker."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import ImportJob
from ..scoping import user_may
from .checking import roster_import
from .reading import import_size_check
from .reports import RosterFileError

logger = logging.getLogger(__name__)

# --- import jobs (run by a Celery worker) ----------------------------------------------


def import_job_create(*, user, filename: str, data: bytes, dry_run: bool = True) -> ImportJob:
    """Store an uploaded roster file as a job and enqueue it after commit.

    A dry run (the default) previews; ``import_job_confirm`` then commits the
    same file. Raises RosterFileError for a file over the size limit and
    PermissionError for a user who may not import.
    """
    if not user_may(user, "add", ImportJob):
        raise PermissionError(_("您没有导入名册的权限。"))
    import_size_check(size=len(data))
    # Housekeeping: a preview nobody confirmed within a day lets go of its file.
    ImportJob.objects.filter(
        data__isnull=False, created_at__lt=timezone.now() - dt.timedelta(days=1)
    ).update(data=None)
    job = ImportJob.objects.create(
        created_by=user, filename=filename[:255], size=len(data), data=data, dry_run=dry_run
    )
    _enqueue(job)
    return job


def import_job_confirm(*, user, job: ImportJob) -> ImportJob:
    """Commit the file of a clean dry run, as a new job (checked again on the way in)."""
    if not job.dry_run or job.status != ImportJob.Status.DONE or job.data is None:
        raise ValueError(_("只能确认一次已完成且没有错误的预览。"))
    if job.result.get("error_count"):
        raise ValueError(_("预览中有错误，不能导入。"))
    commit = ImportJob.objects.create(
        created_by=user,
        filename=job.filename,
        size=job.size,
        data=job.data,
        dry_run=False,
        previewed=job,
    )
    ImportJob.objects.filter(pk=job.pk).update(data=None)
    _enqueue(commit)
    return commit


def _enqueue(job: ImportJob) -> None:
    # units.tasks imports this package: importing it at module level is a cycle.
    from ..tasks import roster_import_run

    transaction.on_commit(lambda: roster_import_run.delay(job.pk))


def import_job_list(*, user) -> QuerySet[ImportJob]:
    qs = ImportJob.objects.defer("data", "result").select_related("created_by")
    return qs if user.is_superuser else qs.filter(created_by=user)


def import_job_get(*, user, job_id: int) -> ImportJob:
    """One of the user's jobs (any job for a superuser); raises ImportJob.DoesNotExist."""
    qs = ImportJob.objects.all() if user.is_superuser else ImportJob.objects.filter(created_by=user)
    return qs.get(pk=job_id)


def import_job_run(*, job_id: int, live_progress: bool = False) -> None:
    """Run a queued job once: a second delivery of the task finds it claimed.

    ``live_progress``: also publish the write pass's progress to Redis (see
    ``JobProgress``). Only a worker sets it; an eager run in a web process or a
    test has nobody polling meanwhile and must not reach for a Redis at all.
    """
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING, started_at=timezone.now(), phase="check"
    )
    if not claimed:
        return
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)
    user = job.created_by
    progress = JobProgress(job_id, live=live_progress)
    try:
        report = roster_import(
            data=bytes(job.data or b""),
            filename=job.filename,
            user=user,
            dry_run=job.dry_run,
            reason=_("导入 %(name)s（任务 #%(id)d）") % {"name": job.filename, "id": job.pk},
            progress=progress,
        )
        result = report.as_dict()
        status = ImportJob.Status.DONE if report.ok else ImportJob.Status.FAILED
    except (RosterFileError, PermissionError) as exc:
        messages = exc.messages if isinstance(exc, RosterFileError) else [str(exc)]
        result = {
            "dry_run": job.dry_run,
            "committed": False,
            "sheets": [],
            "errors": [{"sheet": "", "row": None, "field": "", "message": m} for m in messages],
            "error_count": len(messages),
        }
        status = ImportJob.Status.FAILED
    except Exception as exc:  # noqa: BLE001 - the job must end, whatever went wrong
        # An unexpected error would kill the task and leave the job "running 0 / 0"
        # for ever on the page that polls it: end it as failed, with the reason.
        logger.exception("import job %s crashed", job_id)
        message = _("导入意外中止（%(error)s），请检查文件或联系管理员。") % {
            "error": type(exc).__name__
        }
        result = {
            "dry_run": job.dry_run,
            "committed": False,
            "sheets": [],
            "errors": [{"sheet": "", "row": None, "field": "", "message": message}],
            "error_count": 1,
        }
        status = ImportJob.Status.FAILED
    done = sum(s["rows"] for s in result["sheets"])
    ImportJob.objects.filter(pk=job_id).update(
        status=status,
        result=result,
        phase="",
        progress_done=done,
        progress_total=done,
        finished_at=timezone.now(),
        # A committed (or failed) import lets go of the file; a preview keeps it for "confirm".
        data=job.data if job.dry_run and status == ImportJob.Status.DONE else None,
    )
    progress.clear()


class JobProgress:
    """Reports an import's progress where the admin page's poll can read it.

    While rows are checked (no transaction open) the job row itself is
    updated. The write pass runs inside one transaction, where an update of the
    job row would stay invisible until the end (and on SQLite would wait for
    the import's own write lock), so a job run by a worker (``live``) also
    sends its progress to Redis (best effort: no Redis, no live figure, only
    the phase). The row says "write" before that transaction opens, and only
    then does ``import_job_status`` look in Redis.
    """

    def __init__(self, job_id: int, *, live: bool = False) -> None:
        self.job_id = job_id
        self.key = progress_key(job_id)
        self.last = 0.0
        self.phase = ""
        self.redis = _redis() if live else None

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        # Throttled, but a new phase is always recorded (the status poll keys on it).
        if now - self.last < 0.5 and done < total and phase == self.phase:
            return
        self.last, self.phase = now, phase
        if self.redis is not None:
            try:
                self.redis.set(self.key, f"{phase} {done} {total}", ex=3600)
            except Exception:  # noqa: BLE001 - progress is optional; the import is not
                self.redis = None
        if not transaction.get_connection().in_atomic_block:
            ImportJob.objects.filter(pk=self.job_id).update(
                phase=phase, progress_done=done, progress_total=total
            )

    def clear(self) -> None:
        if self.redis is not None:
            with contextlib.suppress(Exception):  # the key expires anyway
                self.redis.delete(self.key)


def progress_key(job_id: int) -> str:
    return f"roster-import:{job_id}:progress"


def _redis():
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=0.3, socket_timeout=0.5
        )
        client.ping()
        return client
    except Exception:  # noqa: BLE001 - no Redis: progress lives in the job row only
        return None


def import_job_status(*, job: ImportJob) -> dict[str, Any]:
    """What the admin page's progress bar polls."""
    phase, done, total = job.phase, job.progress_done, job.progress_total
    if job.status == ImportJob.Status.RUNNING and job.phase == "write":
        # Only a worker's write pass is there (JobProgress); no other state asks Redis.
        client = _redis()
        raw = client.get(progress_key(job.pk)) if client is not None else None
        if raw:
            phase, done_text, total_text = raw.decode().split()
            done, total = int(done_text), int(total_text)
    return {
        "id": job.pk,
        "status": job.status,
        "status_display": str(job.get_status_display()),
        "phase": phase,
        "done": done,
        "total": total,
        "percent": round(100 * done / total) if total else 0,
        "finished": job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED),
    }
