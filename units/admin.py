"""Django admin for the roster, scoped to each staff user's part of the city.

Who may do what is ``units.scoping`` (one table of roles); which rows is
``scope_filter``, applied to every list, page, search, count, autocomplete,
foreign-key choice, history page and export here. Fast at 23,000 units /
245,500 members: related rows are joined, foreign keys use autocomplete, and
the unfiltered total count is skipped on every page.

Besides the model pages: roster import (upload, preview, confirm, a progress
bar on a Celery job), CSV/XLSX export of any filtered list, and the readiness
overview per district and street.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from . import importing
from .models import Equipment, ImportJob, Member, Region, RosterChange, StaffProfile, Unit
from .scoping import (
    ADD,
    CHANGE,
    DELETE,
    REGION_PATH_LOOKUP,
    VIEW,
    scope_filter,
    user_is_unit_leader,
    user_may,
    user_scope,
    user_sees_phones,
)
from .selectors import readiness_overview, region_list, unit_annotate_readiness


class ScopedPermissionsMixin:
    """Admin permissions from the role table in ``units.scoping``."""

    def has_view_permission(self, request, obj=None) -> bool:
        return user_may(request.user, VIEW, self.model)

    def has_module_permission(self, request) -> bool:
        return user_may(request.user, VIEW, self.model)

    def has_add_permission(self, request, obj=None) -> bool:
        return user_may(request.user, ADD, self.model)

    def has_change_permission(self, request, obj=None) -> bool:
        return user_may(request.user, CHANGE, self.model)

    def has_delete_permission(self, request, obj=None) -> bool:
        return user_may(request.user, DELETE, self.model)


class CappedCountPaginator(Paginator):
    """Counts matching rows only up to a cap: "10000+" results cost the same at
    245,500 members as at 5,000, where an exact count would read them all."""

    cap = 10_000

    @cached_property
    def count(self) -> int:
        counted = self.object_list[: self.cap + 1].count()
        self.capped = counted > self.cap
        return min(counted, self.cap)


class RegionScopedAdmin(ScopedPermissionsMixin, admin.ModelAdmin):
    show_full_result_count = False
    list_per_page = 50
    paginator = CappedCountPaginator

    def get_queryset(self, request) -> QuerySet:
        qs = super().get_queryset(request)
        return qs.filter(scope_filter(request.user, self.model._meta.model_name))

    def get_field_queryset(self, db, db_field, request) -> QuerySet | None:
        # Foreign keys to scoped rows (a unit's region, a member's unit) accept only
        # rows in the user's scope: the autocomplete widget hides the rest, and
        # this makes the form refuse them when posted by hand.
        qs = super().get_field_queryset(db, db_field, request)
        model_name = db_field.related_model._meta.model_name
        if model_name not in REGION_PATH_LOOKUP:
            return qs
        if qs is None:
            qs = db_field.related_model._default_manager.using(db)
        return qs.filter(scope_filter(request.user, model_name))


class RosterHistoryAdmin(SimpleHistoryAdmin):
    """The "历史" page of each roster object: who changed what, when, before/after.

    Scoped like the object itself (the history of a unit in another district is
    a 404, even after the unit was deleted), and only for roles that see phones
    in full, since the changes list shows old and new values.
    """

    def _history_scope(self, request) -> Q:
        history_model = self.model.history.model
        return scope_filter(request.user, history_model._meta.model_name)

    def get_history_queryset(self, request, history_manager, pk_name, object_id) -> QuerySet:
        qs = super().get_history_queryset(request, history_manager, pk_name, object_id)
        return qs.filter(self._history_scope(request))

    def has_view_history_or_change_history_permission(self, request, obj=None) -> bool:
        return self.has_view_history_permission(request, obj)

    def has_view_history_permission(self, request, obj=None) -> bool:
        return self.has_view_permission(request, obj) and user_sees_phones(request.user)

    def has_change_history_permission(self, request, obj=None) -> bool:
        return False  # no reverting: a revert would skip the roster services' checks

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            # SIMPLE_HISTORY_REVERT_DISABLED only hides the button; refuse the POST too.
            raise PermissionDenied
        history_model = self.model.history.model
        visible = history_model.objects.filter(
            self._history_scope(request), history_id=version_id, id=object_id
        )
        if not visible.exists():
            raise Http404
        return super().history_form_view(request, object_id, version_id, extra_context)


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
            response["Content-Disposition"] = _attachment(f"{name}.xlsx")
            return response
        stream = importing.roster_export_csv(
            user=request.user, kind=self.export_kind, queryset=queryset
        )
        response = StreamingHttpResponse(stream, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = _attachment(f"{name}.csv")
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


def _attachment(filename: str) -> str:
    from urllib.parse import quote

    return f"attachment; filename*=UTF-8''{quote(filename)}"


class ScopedInlineMixin:
    """Inline rows follow the role table too (the parent page is already in scope)."""

    def has_view_permission(self, request, obj=None) -> bool:
        return user_may(request.user, VIEW, self.model)

    def has_add_permission(self, request, obj=None) -> bool:
        return user_may(request.user, ADD, self.model)

    def has_change_permission(self, request, obj=None) -> bool:
        return user_may(request.user, CHANGE, self.model)

    def has_delete_permission(self, request, obj=None) -> bool:
        return user_may(request.user, DELETE, self.model)


@admin.display(description=_("手机号"))
def masked_phone(obj: Member) -> str:
    return obj.phone_masked


class PhoneMaskMixin:
    """Members' phones for roles that do not get them in full: masked in lists and
    pages, and not searchable (a search by number would unmask it). Where the
    phone is edited, it must be an 11-digit mainland mobile number, as on import."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "phone" and field is not None:
            field.validators.append(importing.cn_mobile_validate)
        return field

    def _fields_masked(self, request, fields):
        if user_sees_phones(request.user):
            return fields
        masked: list = []
        for name in fields:
            name = "masked_phone" if name == "phone" else name
            if name not in masked:
                masked.append(name)
        return masked

    def get_fields(self, request, obj=None):
        return self._fields_masked(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields if user_sees_phones(request.user) else [*fields, "masked_phone"]

    def masked_phone(self, obj: Member) -> str:
        return obj.phone_masked

    masked_phone.short_description = _("手机号")


class MemberInline(PhoneMaskMixin, ScopedInlineMixin, admin.TabularInline):
    model = Member
    fields = ["name", "phone", "role", "on_duty", "trained", "is_active"]
    extra = 0
    show_change_link = True


class EquipmentInline(ScopedInlineMixin, admin.TabularInline):
    model = Equipment
    fields = ["kind", "quantity", "condition", "last_inspected", "expires"]
    extra = 0


# --- list filters ---------------------------------------------------------------------


class RegionFilter(admin.SimpleListFilter):
    """Drill down by region code: the districts (or streets) in scope, and the
    streets of the district chosen. Links from the readiness overview use it."""

    title = _("区域")
    parameter_name = "region"

    def lookups(self, request, model_admin):
        visible = region_list(user=request.user)
        try:
            scope = user_scope(request.user)
        except PermissionError:
            return []
        districts = list(visible.filter(level=Region.Level.DISTRICT).order_by("code"))
        district = districts[0] if len(districts) == 1 else None
        if self.value():
            chosen = visible.filter(code=self.value()).select_related("parent").first()
            if chosen is not None and chosen.level == Region.Level.DISTRICT:
                district = chosen
            elif chosen is not None and chosen.parent is not None:
                district = chosen.parent if chosen.parent.level == Region.Level.DISTRICT else None
        options = [(d.code, d.name) for d in districts]
        if district is not None:
            streets = visible.filter(parent=district, level=Region.Level.STREET).order_by("code")
            options += [(s.code, f"— {s.name}") for s in streets]
        if not options and scope is not None:
            options = [(scope.code, scope.name)]
        return options

    def queryset(self, request, queryset):
        code = self.value()
        if not code:
            return queryset
        region = region_list(user=request.user).filter(code=code).first()
        if region is None:
            return queryset.none()
        lookup = REGION_PATH_LOOKUP[queryset.model._meta.model_name]
        return queryset.filter(**{f"{lookup}__startswith": region.path})


class ReadyFilter(admin.SimpleListFilter):
    title = _("就绪")
    parameter_name = "ready"

    def lookups(self, request, model_admin):
        return [("1", _("就绪")), ("0", _("未就绪"))]

    def queryset(self, request, queryset):
        if self.value() in {"0", "1"}:
            return queryset.filter(ready=self.value() == "1")
        return queryset


class KitCompleteFilter(admin.SimpleListFilter):
    title = _("装备齐全")
    parameter_name = "kit_complete"

    def lookups(self, request, model_admin):
        return [("1", _("齐全")), ("0", _("不齐全"))]

    def queryset(self, request, queryset):
        if self.value() in {"0", "1"}:
            return queryset.filter(kit_complete=self.value() == "1")
        return queryset


class KitStateFilter(admin.SimpleListFilter):
    """Kit that needs attention: expired, expiring soon, inspection due, broken."""

    title = _("装备状况")
    parameter_name = "kit"

    def lookups(self, request, model_admin):
        return [
            ("expired", _("已过期")),
            ("expiring", _("即将过期")),
            ("inspection_due", _("待检查")),
            ("broken", _("损坏")),
        ]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        value = self.value()
        if value == "expired":
            return queryset.filter(expires__lt=today)
        if value == "expiring":
            warn = today + dt.timedelta(days=settings.ROSTER_EXPIRY_WARNING_DAYS)
            return queryset.filter(expires__gte=today, expires__lte=warn)
        if value == "inspection_due":
            due = today - dt.timedelta(days=settings.ROSTER_INSPECTION_INTERVAL_DAYS)
            return queryset.filter(Q(last_inspected__lt=due) | Q(last_inspected__isnull=True))
        if value == "broken":
            return queryset.filter(condition=Equipment.Condition.BROKEN)
        return queryset


# --- model admins ---------------------------------------------------------------------


@admin.register(Region)
class RegionAdmin(RegionScopedAdmin):
    list_display = ["code", "name", "level", "street_type", "parent"]
    list_filter = ["level"]
    search_fields = ["code", "name", "name_en"]
    list_select_related = ["parent"]
    autocomplete_fields = ["parent"]
    exclude = ["boundary"]


@admin.register(Unit)
class UnitAdmin(ExportMixin, RosterHistoryAdmin, RegionScopedAdmin):
    export_kind = importing.UNIT
    list_display = ["code", "name", "kind", "region", "is_active", "on_duty", "kit", "is_ready"]
    list_filter = ["kind", "is_active", ReadyFilter, KitCompleteFilter, RegionFilter]
    search_fields = ["code", "name", "address"]
    list_select_related = ["region"]
    autocomplete_fields = ["region"]
    inlines = [MemberInline, EquipmentInline]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        # Readiness costs two subqueries per row: only the list shows it (not the
        # autocomplete of 23,000 units, nor the change form).
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name in (
            "units_unit_changelist",
            "units_unit_export",
        ):
            qs = unit_annotate_readiness(qs)
        return qs

    def get_readonly_fields(self, request, obj=None):
        if user_is_unit_leader(request.user):
            # A leader keeps its own unit's page up to date, not where or what it is.
            return ["code", "kind", "region", "lat", "lon", "is_active"]
        return super().get_readonly_fields(request, obj)

    @admin.display(description=_("在岗人数"), ordering="on_duty_count")
    def on_duty(self, obj) -> int:
        return obj.on_duty_count

    @admin.display(description=_("装备齐全"), boolean=True, ordering="kit_ok_count")
    def kit(self, obj) -> bool:
        return obj.kit_complete

    @admin.display(description=_("就绪"), boolean=True)
    def is_ready(self, obj) -> bool:
        return obj.ready

    def get_urls(self):
        return [
            path(
                "readiness/",
                self.admin_site.admin_view(self.readiness_view),
                name="units_unit_readiness",
            ),
            *super().get_urls(),
        ]

    def readiness_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        region = None
        if code := request.GET.get("region"):
            region = region_list(user=request.user).filter(code=code).first()
            if region is None:
                raise Http404
        overview = readiness_overview(user=request.user, region=region)
        region_code = overview.region.code if overview.region is not None else ""
        links = _readiness_links
        context = {
            **self.admin_site.each_context(request),
            "title": _("就绪总览"),
            "opts": self.model._meta,
            "overview": overview,
            "total_links": links(region_code),
            "rows": [(row, links(row.region.code)) for row in overview.rows],
            "drill_down": overview.region is None or overview.region.level != "street",
            "up": overview.region.parent.code
            if overview.region is not None
            and overview.region.parent_id
            and region_list(user=request.user).filter(pk=overview.region.parent_id).exists()
            else None,
            "inspection_days": settings.ROSTER_INSPECTION_INTERVAL_DAYS,
            "warning_days": settings.ROSTER_EXPIRY_WARNING_DAYS,
        }
        return TemplateResponse(request, "roster/readiness.html", context)


def _readiness_links(region_code: str) -> dict[str, str]:
    """Changelist links that show the rows behind each figure, ready to fix."""

    def link(model: str, **params) -> str:
        query = {"region": region_code, **params} if region_code else params
        return f"{reverse(f'admin:units_{model}_changelist')}?{urlencode(query)}"

    return {
        "units": link("unit"),
        "not_ready": link("unit", ready="0", is_active__exact="1"),
        "kit_incomplete": link("unit", kit_complete="0", is_active__exact="1"),
        "on_duty": link("member", on_duty__exact="1"),
        "expired": link("equipment", kit="expired"),
        "expiring": link("equipment", kit="expiring"),
        "inspection_due": link("equipment", kit="inspection_due"),
    }


@admin.register(Member)
class MemberAdmin(ExportMixin, PhoneMaskMixin, RosterHistoryAdmin, RegionScopedAdmin):
    export_kind = importing.MEMBER
    list_display = ["name", "phone", "unit", "role", "on_duty", "trained", "is_active"]
    list_filter = ["role", "on_duty", "trained", "is_active", RegionFilter]
    search_fields = ["name", "phone", "unit__code"]
    list_select_related = ["unit"]
    autocomplete_fields = ["unit"]
    raw_id_fields = ["user"]

    def get_list_display(self, request):
        return self._fields_masked(request, super().get_list_display(request))

    def get_search_fields(self, request):
        fields = super().get_search_fields(request)
        return fields if user_sees_phones(request.user) else [f for f in fields if f != "phone"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        # The login is linked at the member's first sign-in. A region admin may
        # not point a member at an arbitrary account (say, another district's
        # staff), which would then receive that unit's alerts.
        fields = list(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return fields
        return [*fields, "user"]


@admin.register(Equipment)
class EquipmentAdmin(ExportMixin, RosterHistoryAdmin, RegionScopedAdmin):
    export_kind = importing.EQUIPMENT
    list_display = ["unit", "kind", "quantity", "condition", "last_inspected", "expires"]
    list_filter = [KitStateFilter, "kind", "condition", RegionFilter]
    search_fields = ["unit__code", "unit__name"]
    list_select_related = ["unit"]
    autocomplete_fields = ["unit"]


@admin.register(StaffProfile)
class StaffProfileAdmin(RosterHistoryAdmin, RegionScopedAdmin):
    list_display = ["user", "role", "region", "unit"]
    list_filter = ["role"]
    list_select_related = ["user", "region", "unit"]
    autocomplete_fields = ["region", "unit"]
    raw_id_fields = ["user"]


@admin.register(RosterChange)
class RosterChangeAdmin(admin.ModelAdmin):
    list_display = ["id", "unit_id", "created_at"]
    show_full_result_count = False

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- import jobs ------------------------------------------------------------------------


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
        response["Content-Disposition"] = _attachment(f"import-{job.pk}-errors.csv")
        return response
