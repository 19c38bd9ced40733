"""Who may open the review pages: staff whose role may view incidents."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from units.scoping import user_may


def user_may_review(user) -> bool:
    return user.is_active and user_may(user, "view", "dispatch.incident")


def reviewer_required(view):
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not user_may_review(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped
