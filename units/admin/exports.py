""" "导出 CSV / XLSX" of whatever a changelist shows."""

from __future__ import annotations

from urllib.parse import quote

from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.urls import path, reverse
from django.utils import timezone

from .. import importing
from ..models import ImportJob
from ..scoping import (
    ADD,
    user_may,
)


class ExportMixin:
    """ "导出 CSV / XLSX" of whatever the changelist shows (its filters and search)."""

    export_kind: str = ""
    change_list_template = "admin/roster/change_list.html"

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path(
                "export/",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        fmt = request.GET.get("_format", "csv")
        params = request.GET.copy()
        params.pop("_format", None)
        request.GET = params
        queryset = self.get_changelist_instance(request).get_queryset(request)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        name = f"{importing.SHEET_TITLES[self.export_kind]}-{stamp}"
        if fmt == "xlsx":
            data = importing.roster_export_xlsx(
                user=request.user, kinds=[self.export_kind], querysets={self.export_kind: queryset}
            )
            response = HttpResponse(
                data,
                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
            response["Content-Disposition"] = attachment_header(f"{name}.xlsx")
            return response
        stream = importing.roster_export_csv(
            user=request.user, kind=self.export_kind, queryset=queryset
        )
        response = StreamingHttpResponse(stream, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = attachment_header(f"{name}.csv")
        return response

    def changelist_view(self, request, extra_context=None):
        extra = {
            "export_url": reverse(
                f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_export"
            ),
            "import_url": reverse("admin:units_importjob_add")
            if user_may(request.user, ADD, ImportJob)
            else None,
            "readiness_url": reverse("admin:units_unit_readiness"),
        }
        return super().changelist_view(request, {**extra, **(extra_context or {})})


def attachment_header(filename: str) -> str:
    return f"attachment; filename*=UTF-8''{quote(filename)}"
