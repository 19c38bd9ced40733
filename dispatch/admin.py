from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from units.admin import RegionScopedAdmin

from .models import Deadline, Dispatch, Incident, IncidentEvent


def _seconds(start, end) -> int | None:
    return round((end - start).total_seconds()) if start and end else None


class EventInline(admin.TabularInline):
    model = IncidentEvent
    fields = ["seq", "type", "unit", "member", "data", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["seq"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("unit", "member")


class DispatchInline(admin.TabularInline):
    model = Dispatch
    fields = ["unit", "rank", "distance_m", "eta_s", "status", "accepted_by", "accepted_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("unit", "accepted_by")


@admin.register(Incident)
class IncidentAdmin(RegionScopedAdmin):
    list_display = [
        "id",
        "kind",
        "severity",
        "status",
        "region",
        "discovered_at",
        # Durations, not three more timestamps: eleven columns of dates ran past
        # the right edge of a desk screen.
        "response_s",
        "control_s",
        "handling_s",
        "flagged",
        "is_drill",
    ]
    list_filter = ["status", "kind", "severity", "flagged", "is_drill", "source"]
    search_fields = ["=id", "external_id", "address"]
    list_select_related = ["region"]
    date_hierarchy = "discovered_at"
    inlines = [DispatchInline, EventInline]
    readonly_fields = [
        "discovered_at",
        "received_at",
        "responded_at",
        "controlled_at",
        "handled_at",
        "policy",
        "region",
        "reported_by",
        "created_by",
    ]

    @admin.display(description=_("响应用时(秒)"), ordering="responded_at")
    def response_s(self, obj: Incident) -> int | None:
        return _seconds(obj.discovered_at, obj.responded_at)

    @admin.display(description=_("到场用时(秒)"), ordering="controlled_at")
    def control_s(self, obj: Incident) -> int | None:
        return _seconds(obj.discovered_at, obj.controlled_at)

    @admin.display(description=_("处置用时(秒)"), ordering="handled_at")
    def handling_s(self, obj: Incident) -> int | None:
        return _seconds(obj.discovered_at, obj.handled_at)

    # Incidents are opened and moved only through the dispatch services (API,
    # console, phones): a bare admin form would skip ranking, waves, first-time
    # timestamps and the timeline. The admin is a read-only view.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


@admin.register(Deadline)
class DeadlineAdmin(admin.ModelAdmin):
    list_display = ["incident", "tier", "due_at", "fired_at", "outcome"]
    list_filter = ["tier", "outcome"]
    show_full_result_count = False
    raw_id_fields = ["incident"]

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
