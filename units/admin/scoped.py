"""What every roster admin shares: permissions from the role table, rows from
the user's scope, capped counts, and history pages scoped like their objects."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import (
    Http404,
)
from django.utils.functional import cached_property
from simple_history.admin import SimpleHistoryAdmin

from ..scoping import (
    ADD,
    CHANGE,
    DELETE,
    REGION_PATH_LOOKUP,
    VIEW,
    scope_filter,
    user_may,
    user_sees_phones,
)


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
