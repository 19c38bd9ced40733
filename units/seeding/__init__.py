"""Seed a Guangzhou-like demo city on the real district and street data.

Two halves:

* ``demo_city_plan`` is pure: from the geodata files, a unit count and a seed
  it decides every region, unit, member and equipment row (as numpy arrays and
  strings, no database). Same arguments, same plan.
* ``demo_city_seed`` writes a plan with ``bulk_create`` in one transaction, plus
  the demo staff logins and the admin's API token.

Speed matters (the full city must seed in well under a minute on a small
machine), so placement and sampling are vectorised and rows are written in
large batches without ``save()`` or signals.
"""

from __future__ import annotations

from .figures import (
    AED_SHARE,
    CITY_CODE,
    CITY_LAT,
    CITY_LON,
    CITY_NAME,
    CORE_DISTRICTS,
    CORE_FACTOR,
    DB_BATCH,
    DEFAULT_SEED,
    DEFAULT_UNITS,
    DEMO_PASSWORD,
    DEMO_SPOT_LAT,
    DEMO_SPOT_LON,
    DISTRICT_POPULATION,
    DUTY_CHOICES,
    DUTY_P,
    FULL_CITY_MEMBERS,
    FULL_CITY_ON_DUTY,
    FULL_CITY_UNITS,
    GIVEN_CHARS,
    INDUSTRIES,
    KIND_MIX,
    KIND_P_CORE,
    KIND_P_SUBURB,
    KIND_P_TOWN,
    KIND_ROSTER_WEIGHT,
    KINDS,
    MAX_UNITS,
    METRES_PER_DEGREE,
    MIN_ROSTER,
    MOBILE_PREFIXES,
    NEAR_EXPIRY_SHARE,
    ROAD_SUFFIXES,
    ROAD_WORDS,
    SCATTER_SHARE,
    SIGMA_M,
    STAFF_LOGINS,
    STREET_WEIGHT,
    SURNAMES,
    TIANHE,
    TIANHE_STATION_STREET,
    TRAINED_SHARE,
    VENUE_TEMPLATES,
    WRITE_BATCH,
    YUEXIU,
    YUEXIU_STREET,
    SeedError,
)
from .geodata import (
    RegionSpec,
)
from .logins import (
    DemoLogins,
    MemberLogin,
    StaffLogin,
    demo_logins_list,
)
from .plan import (
    EQUIPMENT_KINDS,
    CityPlan,
    demo_city_plan,
    seed_options_validate,
)
from .writing import (
    SeedResult,
    demo_city_seed,
    demo_logins_write,
    roster_wipe,
)

__all__ = [
    "AED_SHARE",
    "CITY_CODE",
    "CITY_LAT",
    "CITY_LON",
    "CITY_NAME",
    "CORE_DISTRICTS",
    "CORE_FACTOR",
    "CityPlan",
    "DB_BATCH",
    "DEFAULT_SEED",
    "DEFAULT_UNITS",
    "DEMO_PASSWORD",
    "DEMO_SPOT_LAT",
    "DEMO_SPOT_LON",
    "DISTRICT_POPULATION",
    "DUTY_CHOICES",
    "DUTY_P",
    "DemoLogins",
    "EQUIPMENT_KINDS",
    "FULL_CITY_MEMBERS",
    "FULL_CITY_ON_DUTY",
    "FULL_CITY_UNITS",
    "GIVEN_CHARS",
    "INDUSTRIES",
    "KINDS",
    "KIND_MIX",
    "KIND_P_CORE",
    "KIND_P_SUBURB",
    "KIND_P_TOWN",
    "KIND_ROSTER_WEIGHT",
    "MAX_UNITS",
    "METRES_PER_DEGREE",
    "MIN_ROSTER",
    "MOBILE_PREFIXES",
    "MemberLogin",
    "NEAR_EXPIRY_SHARE",
    "ROAD_SUFFIXES",
    "ROAD_WORDS",
    "RegionSpec",
    "SCATTER_SHARE",
    "SIGMA_M",
    "STAFF_LOGINS",
    "STREET_WEIGHT",
    "SURNAMES",
    "SeedError",
    "SeedResult",
    "StaffLogin",
    "TIANHE",
    "TIANHE_STATION_STREET",
    "TRAINED_SHARE",
    "VENUE_TEMPLATES",
    "WRITE_BATCH",
    "YUEXIU",
    "YUEXIU_STREET",
    "demo_city_plan",
    "demo_city_seed",
    "demo_logins_list",
    "demo_logins_write",
    "roster_wipe",
    "seed_options_validate",
]
