"""Region scopes: which part of the region tree a user may see.

Every list or fetch of roster data, in the admin and the API, goes through
``scope_filter`` so a district admin never sees another district's rows.
"""

from __future__ import annotations

from django.db.models import Q

from .models import Region, StaffProfile

# Lookup from each scoped model to its region path.
REGION_PATH_LOOKUP: dict[str, str] = {
    "region": "path",
    "unit": "region__path",
    "member": "unit__region__path",
    "equipment": "unit__region__path",
    "staffprofile": "region__path",
    "incident": "region__path",
}

EDITOR_ROLES = {
    StaffProfile.Role.CITY_ADMIN,
    StaffProfile.Role.DISTRICT_ADMIN,
    StaffProfile.Role.STREET_ADMIN,
}


def user_scope(user) -> Region | None:
    """The region whose subtree ``user`` sees; None means the whole tree (superuser).

    Raises PermissionError for an authenticated user with no staff role.
    """
    if user.is_superuser:
        return None
    profile = getattr(user, "staff", None)
    if profile is None:
        raise PermissionError("no staff role")
    return profile.region


def scope_filter(user, model_name: str) -> Q:
    """A Q that keeps only the rows of ``model_name`` inside the user's scope.

    A user with no staff role gets a filter that matches nothing.
    """
    try:
        region = user_scope(user)
    except PermissionError:
        return Q(pk__in=[])
    if region is None:
        return Q()
    return Q(**{f"{REGION_PATH_LOOKUP[model_name]}__startswith": region.path})


def user_can_edit_roster(user) -> bool:
    if user.is_superuser:
        return True
    profile = getattr(user, "staff", None)
    return profile is not None and profile.role in EDITOR_ROLES
