"""Read-only admin pages for the phone app's rows, for superusers: the chain's
attempts (to see who was reached how), lockouts (delete a row to unlock a
number) and push subscriptions."""

from django.contrib import admin, messages
from django.db import models
from django.utils.formats import date_format
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _

from dispatch.models import NotificationAttempt
from units.admin import MemberAdmin as RosterMemberAdmin
from units.models import Member

from .auth import SignInError, member_login_code_issue
from .models import PushSubscription, SignInThrottle
from .selectors import member_reach_annotations, reach_rows


class SuperuserReadDeleteAdmin(admin.ModelAdmin):
    show_full_result_count = False

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(NotificationAttempt)
class NotificationAttemptAdmin(SuperuserReadDeleteAdmin):
    list_display = ["id", "delivery", "channel", "status", "detail", "created_at"]
    list_filter = ["channel", "status"]
    list_select_related = ["delivery"]


@admin.register(SignInThrottle)
class SignInThrottleAdmin(SuperuserReadDeleteAdmin):
    list_display = ["phone", "failures", "last_failure_at", "next_try_at"]
    search_fields = ["phone"]


@admin.register(PushSubscription)
class PushSubscriptionAdmin(SuperuserReadDeleteAdmin):
    list_display = ["member", "user_agent", "created_at", "last_success_at", "failures"]
    # Push endpoints are https URLs; says so to the form, as Django 6 will assume.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_select_related = ["member"]
    raw_id_fields = ["member"]


# --- The roster's member page gains the phone's one-time sign-in codes --------------------


@admin.action(description=_("下发一次性登录码（首次登录/重置密码）"))
def member_issue_login_code(modeladmin, request, queryset) -> None:
    """Show each selected member's fresh code once, for the admin to read out."""
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


# The roster (units) knows nothing of phone sign-in: the phone app re-registers the
# roster's member admin with its action, instead of units importing upward.
admin.site.unregister(Member)


@admin.register(Member)
class MemberAdmin(RosterMemberAdmin):
    actions = [*(RosterMemberAdmin.actions or []), member_issue_login_code]

    # Which channels reached each member last (app / push / SMS / voice), from
    # the dispatch and test-alert rows the roster cannot import: correlated
    # subqueries on the changelist's own query, so a page costs the same
    # queries however many members it lists.
    def get_list_display(self, request):
        return [*super().get_list_display(request), "last_reached"]

    def changelist_view(self, request, extra_context=None):
        request._reach_annotate = True
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if getattr(request, "_reach_annotate", False):
            qs = qs.annotate(**member_reach_annotations())
        return qs

    @admin.display(description=_("最近送达"))
    def last_reached(self, member) -> str:
        rows = reach_rows(member)
        if not rows:
            return "—"
        return format_html_join(
            mark_safe("<br>"),
            "{} {}{}",
            (
                (
                    r["label"],
                    date_format(localtime(r["at"]), "m-d H:i"),
                    _("（测试）") if r["test"] else "",
                )
                for r in rows
            ),
        )
