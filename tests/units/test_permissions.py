"""The permission matrix: every role x every admin model x every action, admin and API.

``ADMIN`` below is the one table of what each role may do. The tests are
generated from it; a model registered in the admin but missing from the table
fails ``test_every_registered_admin_model_is_in_the_permission_table``, so a
new model cannot ship without deciding who may touch it.

Scope is part of every check: the objects a role may act on sit in 天河区
(五山街道, the unit leader's own unit); their twins in 海珠区 must stay
invisible (lists, pages, autocomplete, API) to every role scoped below the city.
"""

from __future__ import annotations

import datetime as dt

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from dispatch.models import Deadline, Delivery, Dispatch, Incident, NotificationAttempt, Wave
from mobile.models import PushSubscription, SignInThrottle
from review.models import IndicatorNode
from tests.dispatch.conftest import service_area  # noqa: F401  (intake needs outlines)
from tests.factories import (
    EquipmentFactory,
    MemberFactory,
    RegionFactory,
    StaffFactory,
    UnitFactory,
    UserFactory,
)
from units.models import ImportJob, RosterChange, StaffProfile

pytestmark = pytest.mark.django_db

ROLES = [
    "superuser",
    "city_admin",
    "district_admin",
    "street_admin",
    "police_station",
    "unit_leader",
    "police_reviewer",
    "member",
    "staff_without_role",
]
# Roles whose scope covers 海珠区 too (the out-of-scope twins are theirs to see).
CITY_WIDE = {"superuser", "city_admin"}

_ADMINS = {"city_admin", "district_admin", "street_admin"}
_READERS = {"police_station", "police_reviewer"}


def _grant(superuser: str = "", admins: str = "", readers: str = "", **roles: str) -> dict:
    table = {"superuser": superuser}
    table |= dict.fromkeys(_ADMINS, admins)
    table |= dict.fromkeys(_READERS, readers)
    return table | roles


# model -> role -> actions allowed in the admin (v)iew (a)dd (c)hange (d)elete.
# A role not named may do nothing; "member" and "staff_without_role" never appear.
ADMIN: dict[str, dict[str, str]] = {
    "units.region": _grant("vacd", admins="v", readers="v"),
    "units.unit": _grant("vacd", admins="vacd", readers="v", unit_leader="vc"),
    "units.member": _grant("vacd", admins="vacd", readers="v", unit_leader="vacd"),
    "units.equipment": _grant("vacd", admins="vacd", readers="v", unit_leader="vacd"),
    "units.staffprofile": _grant("vacd", admins="v"),
    "units.rosterchange": _grant("vd"),
    "units.importjob": _grant("vad", admins="va"),
    # Incidents are opened and moved by the dispatch services, never by an admin form.
    "dispatch.incident": _grant("vd", admins="v", readers="v"),
    "dispatch.deadline": _grant("vd"),
    "auth.user": _grant("vacd"),
    "auth.group": _grant("vacd"),
    "authtoken.tokenproxy": _grant("vacd"),
    "review.indicatornode": _grant("vacd"),  # the review indicator tree: superuser data
    "dispatch.notificationattempt": _grant("vd"),  # the chain's claim rows
    "mobile.signinthrottle": _grant("vd"),
    "mobile.pushsubscription": _grant("vd"),
    # django-axes: staff login lockouts; a superuser unlocks by deleting the attempt.
    # (axes' own admin opens its rows in a form whose fields are all read-only.)
    "axes.accessattempt": _grant("vcd"),
    "axes.accesslog": _grant("vcd"),
    "axes.accessfailurelog": _grant("vcd"),
}

# model -> role -> actions through the API, where the API has an endpoint for them.
API: dict[str, dict[str, str]] = {
    # /api/v1/units/ and /api/v1/units/nearby/ read; there is no write endpoint.
    "units.unit": {
        "superuser": "v",
        **dict.fromkeys(_ADMINS | _READERS, "v"),
        "unit_leader": "v",
    },
    # GET /api/v1/incidents/; POST is intake: integrations, command and admin staff.
    "dispatch.incident": {
        "superuser": "va",
        **dict.fromkeys(_ADMINS, "va"),
        "police_station": "va",
        "police_reviewer": "v",
    },
}


def allowed(table: dict, model: str, role: str) -> set[str]:
    return set(table[model].get(role, ""))


# --- the cast ------------------------------------------------------------------------


@pytest.fixture
def world(city, tianhe, tianhe_street, haizhu_street, near_unit, far_unit):
    """Every object a role may act on (in 天河 / the leader's unit) and its twin
    elsewhere (海珠)."""
    near_member = MemberFactory(unit=near_unit)
    far_member = MemberFactory(unit=far_unit)
    today = timezone.localdate()

    def incident(street):
        return Incident.objects.create(
            kind=Incident.Kind.FIGHT,
            lat=23.13,
            lon=113.32,
            source=Incident.Source.CONSOLE,
            region=street,
            policy={},
            discovered_at=timezone.now(),
        )

    near_incident, far_incident = incident(tianhe_street), incident(haizhu_street)
    # A notification attempt needs an alert; it goes to a third incident, far away,
    # so that no role's view of the two above changes.
    alerted = incident(haizhu_street)
    wave = Wave.objects.create(incident=alerted, number=1, radius_m=1000)
    dispatch = Dispatch.objects.create(
        incident=alerted, wave=wave, unit=far_unit, rank=1, distance_m=100, eta_s=60
    )
    delivery = Delivery.objects.create(dispatch=dispatch, member=far_member)
    return {
        "near": {
            "units.region": tianhe_street,
            "units.unit": near_unit,
            "units.member": near_member,
            "units.equipment": EquipmentFactory(unit=near_unit, expires=today),
            "units.staffprofile": StaffFactory(
                role=StaffProfile.Role.STREET_ADMIN, region=tianhe_street
            ),
            "dispatch.incident": near_incident,
        },
        "far": {
            "units.region": haizhu_street,
            "units.unit": far_unit,
            "units.member": far_member,
            "units.equipment": EquipmentFactory(unit=far_unit),
            "units.staffprofile": StaffFactory(
                role=StaffProfile.Role.STREET_ADMIN, region=haizhu_street
            ),
            "dispatch.incident": far_incident,
        },
        "other": {
            "units.rosterchange": RosterChange.objects.create(unit_id=near_unit.pk),
            "units.importjob": ImportJob.objects.create(filename="x.csv", data=b"x"),
            "dispatch.deadline": Deadline.objects.create(
                incident=near_incident, tier="t", due_at=timezone.now() + dt.timedelta(hours=1)
            ),
            "auth.user": UserFactory(),
            "auth.group": Group.objects.create(name="g"),
            "review.indicatornode": IndicatorNode.objects.create(code="t", name="t"),
            "dispatch.notificationattempt": NotificationAttempt.objects.create(
                delivery=delivery, channel="sms", status=NotificationAttempt.Status.SENT
            ),
            "mobile.signinthrottle": SignInThrottle.objects.create(phone="13800000000"),
            "axes.accessattempt": AccessAttempt.objects.create(
                username="x", ip_address="127.0.0.1", failures_since_start=1
            ),
            "axes.accesslog": AccessLog.objects.create(username="x", ip_address="127.0.0.1"),
            "axes.accessfailurelog": AccessFailureLog.objects.create(
                username="x", ip_address="127.0.0.1"
            ),
            "mobile.pushsubscription": PushSubscription.objects.create(
                member=far_member,
                endpoint="https://fcm.googleapis.com/fcm/send/e2e",
                p256dh="p",
                auth="a",
            ),
        },
    }


@pytest.fixture
def make_user(city, tianhe, tianhe_street, near_unit):
    def make(role: str):
        if role == "superuser":
            return UserFactory(is_superuser=True, is_staff=True)
        if role == "member":
            user = UserFactory(is_staff=False)
            MemberFactory(unit=near_unit, user=user)
            return user
        if role == "staff_without_role":
            return UserFactory(is_staff=True)
        region = {
            "city_admin": city,
            "district_admin": tianhe,
            "police_reviewer": tianhe,
        }.get(role, tianhe_street)
        unit = near_unit if role == "unit_leader" else None
        return StaffFactory(role=role, region=region, unit=unit).user

    return make


def admin_url(label: str, view: str, *args) -> str:
    app, model = label.split(".")
    return reverse(f"admin:{app}_{model}_{view}", args=args)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def refused(response) -> bool:
    """403, or the admin's redirect to its login page for a non-staff account."""
    return response.status_code == 403 or (
        response.status_code == 302 and reverse("admin:login") in response["Location"]
    )


def admin_object(world, label: str, user):
    if label in world["near"]:
        return world["near"][label]
    if label == "units.importjob":
        return ImportJob.objects.create(filename="mine.csv", created_by=user)
    if label == "authtoken.tokenproxy":
        return Token.objects.create(user=UserFactory())
    return world["other"].get(label)


SCOPED = ["units.region", "units.unit", "units.member", "units.equipment", "units.staffprofile",
          "dispatch.incident"]  # fmt: skip


def _admin_cases():
    for role in ROLES:
        for label in sorted(ADMIN):
            yield pytest.param(role, label, id=f"{role}-{label}")


# --- the matrix ----------------------------------------------------------------------


def test_every_registered_admin_model_is_in_the_permission_table():
    registered = {model._meta.label_lower for model in admin.site._registry}

    assert registered - set(ADMIN) == set(), "add the new model to ADMIN in this file"
    assert set(ADMIN) - registered == set(), "a model in ADMIN is no longer registered"


@pytest.mark.parametrize(("role", "label"), list(_admin_cases()))
def test_admin_permissions_follow_the_table(world, make_user, role, label):
    user = make_user(role)
    client = logged_in(user)
    may = allowed(ADMIN, label, role)
    obj = admin_object(world, label, user)
    wrong = []

    listing = client.get(admin_url(label, "changelist"))
    if "v" in may:
        if listing.status_code != 200:
            wrong.append(f"view: changelist answered {listing.status_code}")
    elif not refused(listing):
        wrong.append(f"view: changelist answered {listing.status_code}, not refused")

    add = client.get(admin_url(label, "add"))
    if ("a" in may) != (add.status_code == 200):
        wrong.append(f"add: add page answered {add.status_code}")

    # Every model has an object here, so change and delete are checked both ways.
    assert obj is not None, f"give {label} an object in the world fixture"
    if obj is not None:
        pk = obj.user_id if label == "authtoken.tokenproxy" else obj.pk
        page = client.get(admin_url(label, "change", pk))
        if "v" in may:
            if page.status_code != 200:
                wrong.append(f"view: change page answered {page.status_code}")
            elif bool(page.context["has_change_permission"]) != ("c" in may):
                wrong.append(f"change: has_change_permission is {'c' not in may}")
        elif not (refused(page) or page.status_code == 302):
            wrong.append(f"view: change page answered {page.status_code}")
        delete = client.get(admin_url(label, "delete", pk))
        if ("d" in may) != (delete.status_code == 200):
            wrong.append(f"delete: delete page answered {delete.status_code}")

    assert wrong == [], f"{role} on {label}"


@pytest.mark.parametrize("label", SCOPED)
@pytest.mark.parametrize("role", sorted(set(ROLES) - CITY_WIDE))
def test_objects_elsewhere_are_invisible_in_lists_and_pages(world, make_user, role, label):
    client = logged_in(make_user(role))
    far = world["far"][label]

    listing = client.get(admin_url(label, "changelist"))
    page = client.get(admin_url(label, "change", far.pk))

    if listing.status_code == 200:
        listed = {o.pk for o in listing.context["cl"].result_list}
        assert far.pk not in listed
        # The other direction: what is in scope is listed, so "not listed" above
        # is scoping, not an empty page.
        if "v" in allowed(ADMIN, label, role):
            assert world["near"][label].pk in listed
    # A row out of scope does not exist for this user: the admin's "not found"
    # redirect to the index (or 403/login for users with no access at all).
    assert page.status_code in (302, 403)
    if page.status_code == 302:
        assert str(far) not in client.get(page["Location"]).content.decode()


@pytest.mark.parametrize("role", ROLES)
def test_history_pages_of_objects_elsewhere_are_not_found(world, make_user, role):
    client = logged_in(make_user(role))
    far = world["far"]["units.unit"]

    response = client.get(admin_url("units.unit", "history", far.pk))

    if role in CITY_WIDE:
        assert response.status_code == 200
    else:
        assert response.status_code in (302, 403, 404)
        assert far.code not in response.content.decode()


# --- API ----------------------------------------------------------------------------------


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize("role", ROLES)
def test_unit_api_follows_the_table(world, make_user, role):
    client = api_for(make_user(role))
    may = allowed(API, "units.unit", role)
    near, far = world["near"]["units.unit"], world["far"]["units.unit"]

    listed = client.get("/api/v1/units/")
    detail = client.get(f"/api/v1/units/{near.pk}/")
    elsewhere = client.get(f"/api/v1/units/{far.pk}/")

    assert listed.status_code == 200
    ids = {row["id"] for row in listed.json()["results"]}
    assert (near.pk in ids) == ("v" in may)
    assert (detail.status_code == 200) == ("v" in may)
    assert (far.pk in ids) == (role in CITY_WIDE)
    assert (elsewhere.status_code == 200) == (role in CITY_WIDE)
    # No endpoint writes units: add, change and delete are refused for everyone.
    assert client.post("/api/v1/units/", {"code": "X"}).status_code == 405
    assert client.patch(f"/api/v1/units/{near.pk}/", {"name": "x"}).status_code == 405
    assert client.delete(f"/api/v1/units/{near.pk}/").status_code == 405


@pytest.mark.parametrize("role", ROLES)
# District outlines: intake raises only inside the caller's area (issue 10, hole 3).
@pytest.mark.usefixtures("service_area")
def test_incident_api_follows_the_table(world, make_user, role):
    client = api_for(make_user(role))
    may = allowed(API, "dispatch.incident", role)
    near, far = world["near"]["dispatch.incident"], world["far"]["dispatch.incident"]

    listed = client.get("/api/v1/incidents/")
    detail = client.get(f"/api/v1/incidents/{near.pk}/")
    elsewhere = client.get(f"/api/v1/incidents/{far.pk}/")
    created = client.post(
        "/api/v1/incidents/",
        {"kind": "fight", "severity": 1, "lat": 23.1300, "lon": 113.3200},
        format="json",
    )

    ids = {row["id"] for row in listed.json()["results"]} if listed.status_code == 200 else set()
    assert (near.pk in ids) == ("v" in may)
    assert (detail.status_code == 200) == ("v" in may)
    assert (far.pk in ids) == (role in CITY_WIDE)
    assert elsewhere.status_code != 200 or role in CITY_WIDE
    assert (created.status_code == 201) == ("a" in may), created.content
    assert client.delete(f"/api/v1/incidents/{near.pk}/").status_code in (403, 405)


# --- autocomplete, FK choices, phones ----------------------------------------------------


@pytest.mark.parametrize(
    ("role", "visible"),
    [
        ("superuser", {"near", "far"}),
        ("city_admin", {"near", "far"}),
        ("district_admin", {"near"}),
        ("street_admin", {"near"}),
        ("unit_leader", {"near"}),
        ("police_reviewer", {"near"}),
    ],
)
def test_unit_autocomplete_offers_only_units_in_scope(world, make_user, role, visible):
    client = logged_in(make_user(role))
    near, far = world["near"]["units.unit"], world["far"]["units.unit"]

    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "units", "model_name": "member", "field_name": "unit", "term": ""},
    )

    assert response.status_code == 200
    ids = {int(r["id"]) for r in response.json()["results"]}
    assert ids == {dict(near=near.pk, far=far.pk)[k] for k in visible}


def test_unit_leader_sees_only_their_own_unit_not_the_rest_of_the_street(
    world, make_user, tianhe_street
):
    neighbour = UnitFactory(region=tianhe_street)
    client = logged_in(make_user("unit_leader"))

    listing = client.get(admin_url("units.unit", "changelist"))

    assert [u.pk for u in listing.context["cl"].result_list] == [world["near"]["units.unit"].pk]
    assert client.get(admin_url("units.unit", "change", neighbour.pk)).status_code == 302


def test_unit_leader_cannot_add_a_member_to_another_unit(world, make_user, tianhe_street):
    neighbour = UnitFactory(region=tianhe_street)
    client = logged_in(make_user("unit_leader"))

    response = client.post(
        admin_url("units.member", "add"),
        {"name": "张三", "phone": "13800000001", "unit": neighbour.pk, "role": "member"},
    )

    assert response.status_code == 200
    assert "unit" in response.context["adminform"].form.errors


def test_unit_leader_cannot_move_or_rename_the_code_of_their_unit(world, make_user):
    client = logged_in(make_user("unit_leader"))
    unit = world["near"]["units.unit"]

    page = client.get(admin_url("units.unit", "change", unit.pk))

    form_fields = set(page.context["adminform"].form.fields)
    assert {"code", "region", "lat", "lon", "is_active"}.isdisjoint(form_fields)
    assert {"name", "address", "post_min"} <= form_fields


@pytest.mark.parametrize(
    ("role", "masked"),
    [
        ("superuser", False),
        ("city_admin", False),
        ("district_admin", False),
        ("street_admin", False),
        ("police_station", False),
        ("unit_leader", False),
        ("police_reviewer", True),
    ],
)
def test_phones_are_masked_for_roles_that_do_not_need_them(world, make_user, role, masked):
    member = world["near"]["units.member"]
    user = make_user(role)
    client, api = logged_in(user), api_for(user)

    pages = [
        client.get(admin_url("units.member", "changelist")).content.decode(),
        client.get(admin_url("units.member", "change", member.pk)).content.decode(),
        client.get(admin_url("units.unit", "change", member.unit_id)).content.decode(),
        b"".join(client.get(admin_url("units.member", "export")).streaming_content).decode(),
        api.get(f"/api/v1/units/{member.unit_id}/").content.decode(),
    ]

    for text in pages:
        assert (member.phone in text) is not masked
        if masked:
            assert member.phone_masked in text


def test_a_masked_role_cannot_find_a_member_by_phone_number(world, make_user):
    member = world["near"]["units.member"]
    client = logged_in(make_user("police_reviewer"))

    response = client.get(admin_url("units.member", "changelist"), {"q": member.phone})

    assert list(response.context["cl"].result_list) == []


def test_history_is_not_shown_to_a_role_with_masked_phones(world, make_user):
    client = logged_in(make_user("police_reviewer"))

    response = client.get(admin_url("units.member", "history", world["near"]["units.member"].pk))

    assert response.status_code == 403


def test_a_unit_leader_must_name_their_unit(tianhe_street):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        StaffFactory(role=StaffProfile.Role.UNIT_LEADER, region=tianhe_street, unit=None)


def test_export_follows_the_scope_of_the_list(world, make_user):
    client = logged_in(make_user("district_admin"))

    body = b"".join(client.get(admin_url("units.unit", "export")).streaming_content).decode()

    assert world["near"]["units.unit"].code in body
    assert world["far"]["units.unit"].code not in body


def test_a_region_code_from_another_district_filters_to_nothing(world, make_user):
    client = logged_in(make_user("district_admin"))
    far_street = world["far"]["units.region"]

    response = client.get(admin_url("units.unit", "changelist"), {"region": far_street.code})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


def test_a_street_of_another_city_is_out_of_scope_even_for_a_city_admin(world, make_user):
    shenzhen = RegionFactory(code="4403", level="city", parent=None)
    elsewhere = UnitFactory(region=RegionFactory(parent=shenzhen))
    client = logged_in(make_user("city_admin"))

    listing = client.get(admin_url("units.unit", "changelist"))

    assert elsewhere.pk not in {u.pk for u in listing.context["cl"].result_list}


def test_a_phone_edited_in_the_admin_must_be_a_mainland_mobile_number(world, make_user):
    client = logged_in(make_user("district_admin"))
    unit = world["near"]["units.unit"]

    response = client.post(
        admin_url("units.member", "add"),
        {"name": "张三", "phone": "12345", "unit": unit.pk, "role": "member"},
    )

    assert response.status_code == 200
    assert "phone" in response.context["adminform"].form.errors


def test_docs_roster_incident_column_matches_the_table():
    """docs/roster.md's permission table said admins may change incidents in the
    admin, while the admin is read-only (issue 13): the doc follows this table."""
    from pathlib import Path

    words = {"view": "v", "add": "a", "change": "c", "delete": "d"}
    doc = (Path(__file__).resolve().parents[2] / "docs" / "roster.md").read_text()
    checked = 0
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 8 or not cells[0]:
            continue
        role = cells[0].split()[-2:] if " " in cells[0] else [cells[0]]
        key = "_".join(role)  # "市级管理员 city admin" -> city_admin
        if key not in ROLES:
            continue
        doc_actions = "".join(words[w] for w in cells[7].replace(",", " ").split() if w in words)
        assert doc_actions == ADMIN["dispatch.incident"].get(key, ""), (key, cells[7])
        checked += 1
    assert checked >= 7
