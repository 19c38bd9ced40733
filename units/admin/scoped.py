"""What every roster admin shares: permissions from the role table, rows from
the user's scope, capped counts, and history pages scoped like their objects."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
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


class RelatedText:
    """A read-only foreign key shown as its row's name, without a link.

    Django links every read-only foreign key to the related row's change page,
    whoever looks; most roles may not open most of those pages (a station reading
    a unit, a reviewer reading who raised an incident) and got a 403. Equal to
    another of the same field, so the form's ``exclude`` recognises it.
    """

    def __init__(self, field) -> None:
        self.field_name = field.name
        self.__name__ = field.name  # the admin's column class and help text
        self.short_description = field.verbose_name

    def __call__(self, obj) -> str:
        value = getattr(obj, self.field_name, None)
        if value is None:
            return "-"
        # A member's login is named after its phone ("m138..."): name the member
        # instead, whose string masks the number.
        member = getattr(value, "member", None) if isinstance(value, AbstractBaseUser) else None
        return str(member if member is not None else value)

    def __eq__(self, other) -> bool:
        return isinstance(other, RelatedText) and other.field_name == self.field_name

    def __hash__(self) -> int:
        return hash(("RelatedText", self.field_name))

    def __repr__(self) -> str:
        return f"RelatedText({self.field_name!r})"


class RelatedLinksMixin:
    """Read-only foreign keys link to the related page only for users who may open
    it; for everyone else they are plain text (``RelatedText``).

    Rewritten on the page's field lists (``render_change_form``), after every
    subclass and inline chose its read-only fields, since that is the one place
    that sees them all together with the request.
    """

    def _related_as_text(self, request, model, names, obj) -> dict[str, RelatedText]:
        registry = self.admin_site._registry
        texts = {}
        for name in names:
            if not isinstance(name, str):
                continue
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if not (field.many_to_one or field.one_to_one) or not field.concrete:
                continue
            target = registry.get(field.related_model)
            if target is not None and target.has_view_permission(request):
                value = getattr(obj, name, None) if isinstance(obj, model) else None
                # A scoped row's page opens only inside the user's scope.
                if value is None or target.get_queryset(request).filter(pk=value.pk).exists():
                    continue
            texts[name] = RelatedText(field)
        return texts

    def _unlink(self, request, holder, model, obj) -> None:
        texts = self._related_as_text(request, model, holder.readonly_fields, obj)
        if not texts:
            return
        holder.readonly_fields = [texts.get(n, n) for n in holder.readonly_fields]
        holder.fieldsets = [
            (title, {**opts, "fields": [_swap(f, texts) for f in opts.get("fields", ())]})
            for title, opts in holder.fieldsets
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if context.get("adminform") is not None:
            self._unlink(request, context["adminform"], self.model, obj)
        for inline in context.get("inline_admin_formsets", ()):
            # Rows of an inline each have their own related rows: check the model only.
            self._unlink(request, inline, inline.opts.model, None)
        return super().render_change_form(request, context, add, change, form_url, obj)


def _swap(entry, texts: dict[str, RelatedText]):
    # A fieldset line is a name or a tuple of names shown side by side.
    if isinstance(entry, (list, tuple)):
        return type(entry)(texts.get(n, n) if isinstance(n, str) else n for n in entry)
    return texts.get(entry, entry) if isinstance(entry, str) else entry


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


class RegionScopedAdmin(RelatedLinksMixin, ScopedPermissionsMixin, admin.ModelAdmin):
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
