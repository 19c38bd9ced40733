from django.contrib import admin

from .models import NotificationAttempt, PushSubscription, SignInThrottle


@admin.register(NotificationAttempt)
class NotificationAttemptAdmin(admin.ModelAdmin):
    list_display = ["id", "delivery", "channel", "status", "detail", "created_at"]
    list_filter = ["channel", "status"]
    list_select_related = ["delivery"]
    show_full_result_count = False

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    has_view_permission = has_module_permission

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SignInThrottle)
class SignInThrottleAdmin(admin.ModelAdmin):
    """Unlock a phone number by deleting its row."""

    list_display = ["phone", "failures", "first_failure_at", "locked_until"]
    search_fields = ["phone"]

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    has_view_permission = has_delete_permission = has_module_permission

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PushSubscription)
class PushSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["member", "user_agent", "created_at", "last_success_at", "failures"]
    list_select_related = ["member"]
    raw_id_fields = ["member"]

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    has_view_permission = has_delete_permission = has_module_permission

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
