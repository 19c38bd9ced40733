"""The roster's model admins: regions, units, members, kit, staff, the change log."""

from __future__ import annotations

from functools import partial

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import path
from django.utils.translation import gettext_lazy as _

from .. import importing
from ..models import Equipment, Member, Region, RosterChange, StaffProfile, Unit
from ..scoping import (
    user_is_unit_leader,
    user_sees_phones,
)
from ..selectors import unit_annotate_readiness
from ..services import unit_validate
from .exports import ExportMixin
from .filters import KitCompleteFilter, KitStateFilter, ReadyFilter, RegionFilter
from .inlines import EquipmentInline, MemberInline, PhoneMaskMixin
from .readiness import readiness_view
from .scoped import RegionScopedAdmin, RosterHistoryAdmin

# --- model admins ---------------------------------------------------------------------


@admin.register(Region)
class RegionAdmin(RegionScopedAdmin):
    list_display = ["code", "name", "level", "street_type", "parent"]
    list_filter = ["level"]
    search_fields = ["code", "name", "name_en"]
    list_select_related = ["parent"]
    autocomplete_fields = ["parent"]
    exclude = ["boundary"]


class UnitAdminForm(forms.ModelForm):
    """The unit form checks through ``units.services.unit_validate``, the rules
    ``unit_create`` applies (the service area, above all): the admin is one more
    way in, not a way around them."""

    def _post_clean(self) -> None:
        super()._post_clean()  # builds self.instance from the form's values
        if self._errors:
            return  # the field checks failed already; the service would repeat them
        try:
            unit_validate(unit=self.instance)
        except ValidationError as exc:
            for field, errors in exc.error_dict.items():
                # A field the user cannot edit here (read-only) is reported on the form.
                self.add_error(field if field in self.fields else None, errors)


@admin.register(Unit)
class UnitAdmin(ExportMixin, RosterHistoryAdmin, RegionScopedAdmin):
    export_kind = importing.UNIT
    form = UnitAdminForm
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
                self.admin_site.admin_view(partial(readiness_view, self)),
                name="units_unit_readiness",
            ),
            *super().get_urls(),
        ]


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
        # Duty is clocked on the phone (units.services.member_set_duty, which also
        # moves the phone's socket in or out of the unit's alerts), never ticked here.
        fields = [*super().get_readonly_fields(request, obj), "on_duty", "duty_since"]
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
