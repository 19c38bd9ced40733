"""Read-only admin pages for the phone app's rows, for superusers: the chain's
attempts (to see who was reached how), lockouts (delete a row to unlock a
number) and push subscriptions."""

from django.contrib import admin

from .models import NotificationAttempt, PushSubscription, SignInThrottle


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
    list_display = ["phone", "failures", "first_failure_at", "locked_until"]
    search_fields = ["phone"]


@admin.register(PushSubscription)
class PushSubscriptionAdmin(SuperuserReadDeleteAdmin):
    list_display = ["member", "user_agent", "created_at", "last_success_at", "failures"]
    list_select_related = ["member"]
    raw_id_fields = ["member"]
