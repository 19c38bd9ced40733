"""Admin: the indicator tree is data an administrator edits (weights, thresholds)."""

from __future__ import annotations

from django.contrib import admin

from .models import IndicatorNode


class ChildInline(admin.TabularInline):
    model = IndicatorNode
    fk_name = "parent"
    extra = 0
    fields = ["order", "code", "name", "weight", "metric", "good", "bad", "active"]


@admin.register(IndicatorNode)
class IndicatorNodeAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "parent", "weight", "metric", "good", "bad", "order", "active"]
    list_filter = ["active", "parent"]
    list_editable = ["weight", "good", "bad", "order", "active"]
    search_fields = ["code", "name"]
    inlines = [ChildInline]
