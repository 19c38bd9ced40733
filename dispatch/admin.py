from __future__ import annotations

from django.contrib import admin

from units.admin import RegionScopedAdmin

from .models import Deadline, Dispatch, Incident, IncidentEvent


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
        "responded_at",
        "controlled_at",
        "handled_at",
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
