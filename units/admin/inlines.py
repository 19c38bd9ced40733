"""The unit page's member and kit rows, and phone masking for roles that do not
see members' phones in full."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .. import importing
from ..models import Equipment, Member
from ..scoping import (
    user_sees_phones,
)
from .scoped import ScopedPermissionsMixin


class ScopedInlineMixin(ScopedPermissionsMixin):
    """Inline rows follow the role table too (the parent page is already in scope)."""


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
    # Duty is clocked on the phone (units.services.member_set_duty, which also moves
    # the phone's socket in or out of the unit's alerts), never ticked here.
    readonly_fields = ["on_duty"]
    extra = 0
    show_change_link = True


class EquipmentInline(ScopedInlineMixin, admin.TabularInline):
    model = Equipment
    fields = ["kind", "quantity", "condition", "last_inspected", "expires"]
    extra = 0
