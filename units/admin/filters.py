"""Changelist filters: region drill-down, readiness, kit state."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import admin
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..models import Equipment, Region
from ..scoping import (
    REGION_PATH_LOOKUP,
    user_scope,
)
from ..selectors import region_list

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
