"""Roster import pages: the upload form, a job's progress and preview, confirm,
and the bad rows as CSV. The work itself is ``units.importing``."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from .. import importing
from ..models import ImportJob
from .exports import attachment_header
from .scoped import ScopedPermissionsMixin


@admin.register(ImportJob)
class ImportJobAdmin(ScopedPermissionsMixin, admin.ModelAdmin):
    """导入任务: "add" is the upload form, a job's page its progress and preview."""

    list_display = ["id", "filename", "dry_run", "status", "created_by", "created_at"]
    list_filter = ["status", "dry_run"]
    show_full_result_count = False
    add_form_template = "roster/import.html"

    def get_queryset(self, request) -> QuerySet:
        return importing.import_job_list(user=request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def get_urls(self):
        return [
            path(
                "<int:job_id>/status/",
                self.admin_site.admin_view(self.status_view),
                name="units_importjob_status",
            ),
            path(
                "<int:job_id>/confirm/",
                self.admin_site.admin_view(self.confirm_view),
                name="units_importjob_confirm",
            ),
            path(
                "<int:job_id>/errors.csv",
                self.admin_site.admin_view(self.errors_view),
                name="units_importjob_errors",
            ),
            *super().get_urls(),
        ]

    def _job(self, request, job_id: int) -> ImportJob:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            return importing.import_job_get(user=request.user, job_id=job_id)
        except ImportJob.DoesNotExist as exc:
            raise Http404 from exc

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": _("导入名册"),
            "opts": self.model._meta,
            "max_mb": settings.ROSTER_IMPORT_MAX_BYTES / 1024 / 1024,
            "columns": [
                (importing.SHEET_TITLES[kind], importing.COLUMNS[kind]) for kind in importing.KINDS
            ],
        }
        if request.method == "POST":
            try:
                upload = request.FILES.get("file")
                if upload is None:
                    raise importing.RosterFileError(_("请选择要导入的文件。"))
                importing.import_size_check(size=upload.size)
                job = importing.import_job_create(
                    user=request.user,
                    filename=upload.name,
                    data=upload.read(),
                    dry_run=True,
                )
            except importing.RosterFileError as exc:
                context["errors"] = exc.messages
                return TemplateResponse(request, "roster/import.html", context, status=400)
            return HttpResponseRedirect(reverse("admin:units_importjob_change", args=[job.pk]))
        return TemplateResponse(request, "roster/import.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self._job(request, int(object_id))
        errors = job.result.get("errors", [])
        context = {
            **self.admin_site.each_context(request),
            "title": _("导入任务 #%(id)d：%(name)s") % {"id": job.pk, "name": job.filename},
            "opts": self.model._meta,
            "job": job,
            "has_change_permission": False,
            "result": job.result,
            "errors_shown": errors[:500],
            "errors_more": max(0, len(errors) - 500),
            "status": importing.import_job_status(job=job),
            "can_confirm": job.dry_run
            and job.status == ImportJob.Status.DONE
            and job.data is not None
            and not job.result.get("error_count"),
        }
        return TemplateResponse(request, "roster/import_job.html", context)

    def status_view(self, request, job_id: int) -> JsonResponse:
        return JsonResponse(importing.import_job_status(job=self._job(request, job_id)))

    def confirm_view(self, request, job_id: int) -> HttpResponse:
        if request.method != "POST" or not self.has_add_permission(request):
            raise PermissionDenied
        job = self._job(request, job_id)
        try:
            commit = importing.import_job_confirm(user=request.user, job=job)
        except ValueError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(reverse("admin:units_importjob_change", args=[job.pk]))
        return HttpResponseRedirect(reverse("admin:units_importjob_change", args=[commit.pk]))

    def errors_view(self, request, job_id: int) -> HttpResponse:
        job = self._job(request, job_id)
        body = importing.import_errors_csv(errors=job.result.get("errors", []))
        response = FileResponse(iter([body]), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = attachment_header(f"import-{job.pk}-errors.csv")
        return response
