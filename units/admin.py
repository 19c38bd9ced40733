"""Django admin for the roster, scoped to each staff user's region subtree.

Fast at 23,000 units / 245,500 members: related rows are joined, foreign keys
use autocomplete (no 23k-option <select>), and the unfiltered total count is
skipped on every page.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from .models import Equipment, Member, Region, RosterChange, StaffProfile, Unit
from .scoping import REGION_PATH_LOOKUP, scope_filter, user_can_edit_roster
from .selectors import unit_annotate_readiness


class RegionScopedAdmin(admin.ModelAdmin):
    show_full_result_count = False
    list_per_page = 50

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

    def has_view_permission(self, request, obj=None) -> bool:
        user = request.user
        return user.is_active and (user.is_superuser or hasattr(user, "staff"))

    has_module_permission = has_view_permission

    def has_add_permission(self, request) -> bool:
        return user_can_edit_roster(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return user_can_edit_roster(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return user_can_edit_roster(request.user)


class MemberInline(admin.TabularInline):
    model = Member
    fields = ["name", "phone", "role", "on_duty", "trained", "is_active"]
    extra = 0
    show_change_link = True


class EquipmentInline(admin.TabularInline):
    model = Equipment
    fields = ["kind", "quantity", "condition", "last_inspected", "expires"]
    extra = 0


@admin.register(Region)
class RegionAdmin(RegionScopedAdmin):
    list_display = ["code", "name", "level", "street_type", "parent"]
    list_filter = ["level"]
    search_fields = ["code", "name", "name_en"]
    list_select_related = ["parent"]
    autocomplete_fields = ["parent"]
    exclude = ["boundary"]

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    has_delete_permission = has_change_permission


class ReadyFilter(admin.SimpleListFilter):
    title = _("就绪")
    parameter_name = "ready"

    def lookups(self, request, model_admin):
        return [("1", _("就绪")), ("0", _("未就绪"))]

    def queryset(self, request, queryset):
        if self.value() in {"0", "1"}:
            return queryset.filter(ready=self.value() == "1")
        return queryset


@admin.register(Unit)
class UnitAdmin(RegionScopedAdmin):
    list_display = ["code", "name", "kind", "region", "is_active", "on_duty", "kit", "is_ready"]
    # Only the districts that hold units in scope, not every district by name.
    list_filter = [
        "kind",
        "is_active",
        ReadyFilter,
        ("region__parent", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["code", "name", "address"]
    list_select_related = ["region"]
    autocomplete_fields = ["region"]
    inlines = [MemberInline, EquipmentInline]

    def get_queryset(self, request):
        return unit_annotate_readiness(super().get_queryset(request))

    @admin.display(description=_("在岗人数"), ordering="on_duty_count")
    def on_duty(self, obj) -> int:
        return obj.on_duty_count

    @admin.display(description=_("装备齐全"), boolean=True, ordering="kit_ok_count")
    def kit(self, obj) -> bool:
        return obj.kit_complete

    @admin.display(description=_("就绪"), boolean=True)
    def is_ready(self, obj) -> bool:
        return obj.ready


@admin.register(Member)
class MemberAdmin(RegionScopedAdmin):
    list_display = ["name", "phone", "unit", "role", "on_duty", "trained", "is_active"]
    list_filter = ["role", "on_duty", "trained", "is_active"]
    search_fields = ["name", "phone", "unit__code"]
    list_select_related = ["unit"]
    autocomplete_fields = ["unit"]
    raw_id_fields = ["user"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        # The login is linked at the member's first sign-in. A region admin may
        # not point a member at an arbitrary account (say, another district's
        # staff), which would then receive that unit's alerts.
        if request.user.is_superuser:
            return []
        return ["user"]


@admin.register(Equipment)
class EquipmentAdmin(RegionScopedAdmin):
    list_display = ["unit", "kind", "quantity", "condition", "last_inspected", "expires"]
    list_filter = ["kind", "condition"]
    search_fields = ["unit__code", "unit__name"]
    list_select_related = ["unit"]
    autocomplete_fields = ["unit"]
    date_hierarchy = "expires"


@admin.register(StaffProfile)
class StaffProfileAdmin(RegionScopedAdmin):
    list_display = ["user", "role", "region"]
    list_filter = ["role"]
    list_select_related = ["user", "region"]
    autocomplete_fields = ["region"]
    raw_id_fields = ["user"]

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    has_delete_permission = has_change_permission


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


# --- Member app: one-time sign-in codes ---------------------------------------------------


@admin.action(description=_("下发一次性登录码（首次登录/重置密码）"))
def member_issue_login_code(modeladmin, request, queryset) -> None:
    """Show each selected member's fresh code once, for the admin to read out."""
    from django.contrib import messages

    from .member_auth import SignInError, member_login_code_issue

    for member in queryset[:50]:
        try:
            issued = member_login_code_issue(member=member, issued_by=request.user)
        except SignInError as exc:
            modeladmin.message_user(request, f"{member}: {exc.message}", messages.ERROR)
            continue
        modeladmin.message_user(
            request,
            _("%(m)s 的登录码：%(c)s（有效期至 %(t)s）")
            % {"m": member, "c": issued.code, "t": f"{issued.expires_at:%Y-%m-%d %H:%M}"},
            messages.SUCCESS,
        )


MemberAdmin.actions = [*(MemberAdmin.actions or []), member_issue_login_code]
