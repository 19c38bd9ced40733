"""Django admin for the roster, scoped to each staff user's part of the city.

Who may do what is ``units.scoping`` (one table of roles); which rows is
``scope_filter``, applied to every list, page, search, count, autocomplete,
foreign-key choice, history page and export here. Fast at 23,000 units /
245,500 members: related rows are joined, foreign keys use autocomplete, and
the unfiltered total count is skipped on every page.

Besides the model pages: roster import (upload, preview, confirm, a progress
bar on a Celery job), CSV/XLSX export of any filtered list, and the readiness
overview per district and street.

Modules: ``scoped`` (what every roster admin shares), ``filters``, ``exports``,
``inlines``, ``roster`` (the model admins), ``readiness`` (the overview page)
and ``imports`` (the import pages). Importing this package registers them all.
"""

from __future__ import annotations

from .exports import ExportMixin
from .filters import KitCompleteFilter, KitStateFilter, ReadyFilter, RegionFilter
from .imports import ImportJobAdmin
from .inlines import EquipmentInline, MemberInline, PhoneMaskMixin, ScopedInlineMixin
from .readiness import readiness_view
from .roster import (
    EquipmentAdmin,
    MemberAdmin,
    RegionAdmin,
    RosterChangeAdmin,
    StaffProfileAdmin,
    UnitAdmin,
    UnitAdminForm,
)
from .scoped import (
    CappedCountPaginator,
    RegionScopedAdmin,
    RosterHistoryAdmin,
    ScopedPermissionsMixin,
)

__all__ = [
    "CappedCountPaginator",
    "EquipmentAdmin",
    "EquipmentInline",
    "ExportMixin",
    "ImportJobAdmin",
    "KitCompleteFilter",
    "KitStateFilter",
    "MemberAdmin",
    "MemberInline",
    "PhoneMaskMixin",
    "ReadyFilter",
    "RegionAdmin",
    "RegionFilter",
    "RegionScopedAdmin",
    "RosterChangeAdmin",
    "RosterHistoryAdmin",
    "ScopedInlineMixin",
    "ScopedPermissionsMixin",
    "StaffProfileAdmin",
    "UnitAdmin",
    "UnitAdminForm",
    "readiness_view",
]
