"""Read-only admin pages for the phone app's rows, for superusers: the chain's
attempts (to see who was reached how), lockouts (delete a row to unlock a
number) and push subscriptions."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from dispatch.models import NotificationAttempt
from units.admin import MemberAdmin as RosterMemberAdmin
from units.models import Member

from .auth import SignInError, member_login_code_issue
from .models import PushSubscription, SignInThrottle


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
