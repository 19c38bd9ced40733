from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DispatchConfig(AppConfig):
    name = "dispatch"
    verbose_name = _("警情调度")

    def ready(self) -> None:
        # Imported here, not at the top: both modules import models, which the
        # app registry allows only once it is ready.
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from units.models import Member, Unit
        from units.services import member_duty_changed, roster_bulk_deactivated

        from . import checks  # noqa: F401 - registers the heartbeat timing checks
        from .events import (
            member_duty_changed_push,
            roster_bulk_deactivated_close,
            roster_saved_close_revoked,
        )
        from .gateways import checks as gateway_checks  # noqa: F401 - the provider key checks

        # The roster's duty flip reaches the member's sockets (join/leave the unit group).
        member_duty_changed.connect(member_duty_changed_push, dispatch_uid="dispatch.duty_push")
        # Deactivating a member, its unit or its login closes the member's sockets at
        # once (the roster's own post_save signal: units never imports dispatch).
        roster_bulk_deactivated.connect(
            roster_bulk_deactivated_close, dispatch_uid="dispatch.close_bulk_deactivated"
        )
        for model in (Member, Unit, get_user_model()):
            post_save.connect(
                roster_saved_close_revoked,
                sender=model,
                dispatch_uid=f"dispatch.close_revoked.{model._meta.label_lower}",
            )
