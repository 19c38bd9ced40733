from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DispatchConfig(AppConfig):
    name = "dispatch"
    verbose_name = _("警情调度")

    def ready(self) -> None:
        # Imported here, not at the top: both modules import models, which the
        # app registry allows only once it is ready.
        from units.services import member_duty_changed

        from .events import member_duty_changed_push

        # The roster's duty flip reaches the member's sockets (join/leave the unit group).
        member_duty_changed.connect(member_duty_changed_push, dispatch_uid="dispatch.duty_push")
