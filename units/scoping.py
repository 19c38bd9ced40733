"""Who may see and do what with roster (and incident) rows.

Two questions, answered in one place for the admin, the API, exports, imports
and the readiness overview:

* **Which rows?** ``scope_filter(user, model_name)``: a district admin sees the
  rows under its district, a street admin under its street, a unit leader its
  own unit, a superuser everything, anyone else nothing.
* **Which actions?** ``user_may(user, action, model)``: the ``ROLE_GRANTS``
  table below, per role and model. A model missing from the table is closed
  to every role but the superuser.

Phones are personal data: ``user_sees_phones`` says who gets them in full,
everyone else gets ``phone_mask`` (docs/roster.md explains the choice).
"""

from __future__ import annotations

from django.db.models import Model, Q

from .models import Region, StaffProfile, phone_mask

Role = StaffProfile.Role

# Lookup from each scoped model to its region path.
REGION_PATH_LOOKUP: dict[str, str] = {
    "region": "path",
    "unit": "region__path",
    "member": "unit__region__path",
    "equipment": "unit__region__path",
    "staffprofile": "region__path",
    "incident": "region__path",
    # Audit history (django-simple-history) keeps the same foreign keys.
    "historicalunit": "region__path",
    "historicalmember": "unit__region__path",
    "historicalequipment": "unit__region__path",
    "historicalstaffprofile": "region__path",
}

# A unit leader's rows: lookup from each model to the unit's id. Models not
# listed here are out of a unit leader's scope (whatever ROLE_GRANTS says).
UNIT_ID_LOOKUP: dict[str, str] = {
    "unit": "pk",
    "member": "unit_id",
    "equipment": "unit_id",
    "historicalunit": "id",
    "historicalmember": "unit_id",
    "historicalequipment": "unit_id",
}

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
ACTIONS = (VIEW, ADD, CHANGE, DELETE)
_ALL = frozenset(ACTIONS)
_READ = frozenset({VIEW})
_NONE: frozenset[str] = frozenset()

# What each staff role may do with each model (its rows limited by scope_filter).
# The superuser may do everything the admin classes allow; members (phone app
# users) and accounts without a staff role get nothing.
_ROSTER_EDITOR = {
    "units.region": _READ,
    "units.unit": _ALL,
    "units.member": _ALL,
    "units.equipment": _ALL,
    "units.staffprofile": _READ,
    "units.importjob": frozenset({VIEW, ADD}),
    # Incidents are opened and moved by the dispatch services only: the admin reads.
    "dispatch.incident": _READ,
}
_ROSTER_READER = {
    "units.region": _READ,
    "units.unit": _READ,
    "units.member": _READ,
    "units.equipment": _READ,
    "dispatch.incident": _READ,
}
ROLE_GRANTS: dict[str, dict[str, frozenset[str]]] = {
    Role.CITY_ADMIN: _ROSTER_EDITOR,
    Role.DISTRICT_ADMIN: _ROSTER_EDITOR,
    Role.STREET_ADMIN: _ROSTER_EDITOR,
    Role.POLICE_STATION: _ROSTER_READER,
    Role.POLICE_REVIEWER: _ROSTER_READER,
    # Own unit: its page (a few fields), its roster, duty and kit.
    Role.UNIT_LEADER: {
        "units.unit": frozenset({VIEW, CHANGE}),
        "units.member": _ALL,
        "units.equipment": _ALL,
    },
}

EDITOR_ROLES = {Role.CITY_ADMIN, Role.DISTRICT_ADMIN, Role.STREET_ADMIN}
# Roles that work with members' phone numbers: admins keep the roster, the
# police station calls units, a leader calls its own people. A reviewer studies
# timings and gets masked numbers.
PHONE_ROLES = {*EDITOR_ROLES, Role.POLICE_STATION, Role.UNIT_LEADER}


def staff_profile(user) -> StaffProfile | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return getattr(user, "staff", None)


def user_scope(user) -> Region | None:
    """The region whose subtree ``user`` sees; None means the whole tree (superuser).

    Raises PermissionError for an authenticated user with no staff role. A unit
    leader's region is its unit's street; ``scope_filter`` narrows it to the unit.
    """
    if user.is_superuser:
        return None
    profile = staff_profile(user)
    if profile is None:
        raise PermissionError("no staff role")
    return profile.region


def scope_filter(user, model_name: str) -> Q:
    """A Q that keeps only the rows of ``model_name`` inside the user's scope.

    A user with no staff role gets a filter that matches nothing.
    """
    nothing = Q(pk__in=[])
    if getattr(user, "is_superuser", False):
        return Q()
    profile = staff_profile(user)
    if profile is None:
        return nothing
    if profile.role == Role.UNIT_LEADER:
        lookup = UNIT_ID_LOOKUP.get(model_name)
        if lookup is None or profile.unit_id is None:
            return nothing
        return Q(**{lookup: profile.unit_id})
    return Q(**{f"{REGION_PATH_LOOKUP[model_name]}__startswith": profile.region.path})


def _label(model: type[Model] | str) -> str:
    return model if isinstance(model, str) else model._meta.label_lower


def user_may(user, action: str, model: type[Model] | str) -> bool:
    """May ``user`` take ``action`` (view/add/change/delete) on rows of ``model``
    in its scope? The superuser may; others per ROLE_GRANTS."""
    if not getattr(user, "is_active", False):
        return False
    if user.is_superuser:
        return True
    profile = staff_profile(user)
    if profile is None:
        return False
    return action in ROLE_GRANTS.get(profile.role, {}).get(_label(model), _NONE)


def user_can_edit_roster(user) -> bool:
    """May ``user`` add, change and delete units (and their members and kit) in scope."""
    if user.is_superuser:
        return True
    profile = staff_profile(user)
    return profile is not None and profile.role in EDITOR_ROLES


def user_is_unit_leader(user) -> bool:
    profile = staff_profile(user)
    return profile is not None and not user.is_superuser and profile.role == Role.UNIT_LEADER


def user_sees_phones(user) -> bool:
    """Does ``user`` get members' phone numbers in full (pages, API, exports)?"""
    if getattr(user, "is_superuser", False):
        return True
    profile = staff_profile(user)
    return profile is not None and profile.role in PHONE_ROLES


__all__ = [
    "ACTIONS",
    "REGION_PATH_LOOKUP",
    "ROLE_GRANTS",
    "UNIT_ID_LOOKUP",
    "phone_for",
    "phone_mask",
    "scope_filter",
    "user_can_edit_roster",
    "user_may",
    "user_scope",
    "user_sees_phones",
]


def phone_for(user, phone: str) -> str:
    return phone if user_sees_phones(user) else phone_mask(phone)
