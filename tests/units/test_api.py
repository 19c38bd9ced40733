from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.pagination import PageNumberPagination
from rest_framework.test import APIClient

from tests.factories import (
    EquipmentFactory,
    MemberFactory,
    RegionFactory,
    StaffFactory,
    UnitFactory,
    UserFactory,
)
from units.models import STANDARD_KIT, EquipmentKind, StaffProfile, Unit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 at full strength costs ~0.1 s per user the factories make.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


PASSWORD = "pw-12345678"  # UserFactory's
UNITS = "/api/v1/units/"


def give_full_kit(unit: Unit) -> None:
    expires = timezone.localdate() + dt.timedelta(days=365)
    for kind, qty in STANDARD_KIT.items():
        EquipmentFactory(unit=unit, kind=kind, quantity=qty, expires=expires)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def superuser(db):
    return UserFactory(is_superuser=True, is_staff=True)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def codes(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["code"] for row in response.json()["results"]]


# --- auth ----------------------------------------------------------------------


def test_token_endpoint_returns_a_token_for_good_credentials(api):
    user = UserFactory()

    response = api.post("/api/v1/auth/token/", {"username": user.username, "password": PASSWORD})

    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}


def test_token_endpoint_returns_the_same_token_twice(api):
    user = UserFactory()
    body = {"username": user.username, "password": PASSWORD}

    first = api.post("/api/v1/auth/token/", body).json()["token"]
    second = api.post("/api/v1/auth/token/", body).json()["token"]

    assert first == second


def test_token_endpoint_names_missing_fields(api):
    response = api.post("/api/v1/auth/token/", {}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"username", "password"}


def test_token_endpoint_refuses_a_wrong_password_with_400(api):
    user = UserFactory()

    response = api.post("/api/v1/auth/token/", {"username": user.username, "password": "nope"})

    assert response.status_code == 400
    assert "non_field_errors" in response.json()
    assert not Token.objects.exists()


def test_token_endpoint_refuses_an_inactive_user(api):
    user = UserFactory(is_active=False)

    response = api.post("/api/v1/auth/token/", {"username": user.username, "password": PASSWORD})

    assert response.status_code == 400


def test_token_authenticates_the_units_list(api, near_unit, tianhe_admin):
    token = Token.objects.create(user=tianhe_admin)

    response = api.get(UNITS, HTTP_AUTHORIZATION=f"Token {token.key}")

    assert codes(response) == [near_unit.code]


def test_a_bad_token_is_refused_with_401(api, near_unit):
    response = api.get(UNITS, HTTP_AUTHORIZATION="Token not-a-token")

    assert response.status_code == 401


def test_units_list_refuses_anonymous_requests(api, near_unit):
    response = api.get(UNITS)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_unit_detail_refuses_anonymous_requests(api, near_unit):
    assert api.get(f"{UNITS}{near_unit.pk}/").status_code == 401


def csrf_cookie(client: Client) -> str:
    return client.cookies["csrftoken"].value


def test_browser_session_flow_with_csrf_checks(tianhe_admin, near_unit):
    """What a browser does: fetch the CSRF cookie, log in, read, log out."""
    browser = Client(enforce_csrf_checks=True)

    # A page served from elsewhere first asks for the cookie.
    response = browser.get("/api/v1/auth/login/")
    assert response.status_code == 200
    assert response.json()["username"] is None
    assert "csrftoken" in browser.cookies

    # The token in the body (a masked form of the cookie) is as good as the cookie.
    response = browser.post(
        "/api/v1/auth/login/",
        {"username": tianhe_admin.username, "password": PASSWORD},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=response.json()["csrftoken"],
    )
    assert response.status_code == 200, response.content
    assert response.json()["username"] == tianhe_admin.username
    assert "sessionid" in browser.cookies

    assert codes(browser.get(UNITS)) == [near_unit.code]

    # Logging in rotated the token; the new one is in the cookie jar.
    response = browser.post("/api/v1/auth/logout/", HTTP_X_CSRFTOKEN=csrf_cookie(browser))
    assert response.status_code == 204

    assert browser.get(UNITS).status_code in {401, 403}


def test_logout_without_a_csrf_token_is_refused(tianhe_admin):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/api/v1/auth/login/")
    browser.post(
        "/api/v1/auth/login/",
        {"username": tianhe_admin.username, "password": PASSWORD},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf_cookie(browser),
    )

    response = browser.post("/api/v1/auth/logout/")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert browser.get(UNITS).status_code == 200  # still logged in


def test_login_without_a_csrf_token_is_refused(tianhe_admin):
    """Login CSRF: another site must not log the browser into its own account."""
    browser = Client(enforce_csrf_checks=True)

    response = browser.post(
        "/api/v1/auth/login/",
        {"username": tianhe_admin.username, "password": PASSWORD},
        content_type="application/json",
    )

    assert response.status_code == 403
    assert "sessionid" not in browser.cookies


def test_login_names_missing_fields_and_refuses_a_wrong_password(api, tianhe_admin):
    response = api.post("/api/v1/auth/login/", {"username": tianhe_admin.username})
    assert response.status_code == 400
    assert set(response.json()) == {"password"}

    response = api.post(
        "/api/v1/auth/login/", {"username": tianhe_admin.username, "password": "wrong"}
    )
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_logout_when_not_logged_in_is_refused(api):
    assert api.post("/api/v1/auth/logout/").status_code in {401, 403}


# --- list ----------------------------------------------------------------------


def test_units_list_is_paginated(superuser, tianhe_street, monkeypatch):
    for _ in range(3):
        UnitFactory(region=tianhe_street)
    # The class reads PAGE_SIZE once, at import.
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)
    client = client_for(superuser)

    first = client.get(UNITS).json()
    second = client.get(first["next"]).json()

    assert first["count"] == 3
    assert len(first["results"]) == 2
    assert first["next"] is not None
    assert first["previous"] is None
    assert len(second["results"]) == 1
    assert second["next"] is None


def test_units_list_rows_carry_region_and_readiness(superuser, near_unit, near_member):
    give_full_kit(near_unit)
    MemberFactory(unit=near_unit, on_duty=True)  # one to send, one keeps the post

    (row,) = client_for(superuser).get(UNITS).json()["results"]

    assert row["id"] == near_unit.pk
    assert row["region"] == "440106001"
    assert row["region_name"] == "五山街道"
    assert row["on_duty_count"] == 2
    assert row["kit_complete"] is True
    assert row["ready"] is True


def test_region_filter_takes_a_district_code_and_returns_its_whole_subtree(
    superuser, tianhe, near_unit, far_unit
):
    other_tianhe_street = RegionFactory(parent=tianhe)
    second = UnitFactory(region=other_tianhe_street)
    client = client_for(superuser)

    assert set(codes(client.get(UNITS, {"region": "440106"}))) == {near_unit.code, second.code}
    assert codes(client.get(UNITS, {"region": "440106001"})) == [near_unit.code]
    assert codes(client.get(UNITS, {"region": "440105"})) == [far_unit.code]


def test_kind_filter(superuser, tianhe_street):
    school = UnitFactory(region=tianhe_street, kind=Unit.Kind.SCHOOL)
    UnitFactory(region=tianhe_street, kind=Unit.Kind.MALL)

    assert codes(client_for(superuser).get(UNITS, {"kind": "school"})) == [school.code]


def test_ready_filter_true_and_false(superuser, near_unit, near_member, far_unit, far_member):
    MemberFactory(unit=near_unit, on_duty=True)  # one to send, one keeps the post
    client = client_for(superuser)

    assert codes(client.get(UNITS, {"ready": "true"})) == [near_unit.code]
    assert codes(client.get(UNITS, {"ready": "false"})) == [far_unit.code]
    assert set(codes(client.get(UNITS))) == {near_unit.code, far_unit.code}


def test_empty_filter_parameters_mean_no_filter(superuser, near_unit, far_unit):
    response = client_for(superuser).get(UNITS, {"region": "", "kind": "", "ready": ""})

    assert set(codes(response)) == {near_unit.code, far_unit.code}


def test_a_bad_kind_is_a_400_naming_kind(superuser, near_unit):
    response = client_for(superuser).get(UNITS, {"kind": "spaceship"})

    assert response.status_code == 400
    assert set(response.json()) == {"kind"}


def test_a_bad_ready_value_is_a_400_naming_ready(superuser, near_unit):
    response = client_for(superuser).get(UNITS, {"ready": "perhaps"})

    assert response.status_code == 400
    assert set(response.json()) == {"ready"}


def test_an_unknown_region_is_a_400_naming_region(superuser, near_unit):
    response = client_for(superuser).get(UNITS, {"region": "999999"})

    assert response.status_code == 400
    assert set(response.json()) == {"region"}


def test_a_region_outside_the_scope_is_a_400_like_an_unknown_one(haizhu_admin, near_unit):
    response = client_for(haizhu_admin).get(UNITS, {"region": "440106"})

    assert response.status_code == 400
    assert set(response.json()) == {"region"}


def test_district_admin_sees_only_their_districts_units(haizhu_admin, near_unit, far_unit):
    assert codes(client_for(haizhu_admin).get(UNITS)) == [far_unit.code]


def test_street_admin_sees_only_their_streets_units(tianhe, tianhe_street, near_unit, far_unit):
    UnitFactory(region=RegionFactory(parent=tianhe))
    admin = StaffFactory(role=StaffProfile.Role.STREET_ADMIN, region=tianhe_street).user

    assert codes(client_for(admin).get(UNITS)) == [near_unit.code]


def test_superuser_sees_every_unit(superuser, near_unit, far_unit):
    assert set(codes(client_for(superuser).get(UNITS))) == {near_unit.code, far_unit.code}


def test_a_logged_in_user_without_a_staff_role_sees_no_units(near_unit):
    response = client_for(UserFactory()).get(UNITS)

    assert response.status_code == 200
    assert response.json()["count"] == 0


def _list_queries(client: APIClient, n_units: int, region) -> int:
    while Unit.objects.count() < n_units:
        unit = UnitFactory(region=region)
        MemberFactory(unit=unit, on_duty=True)
        MemberFactory(unit=unit)
        EquipmentFactory(unit=unit, kind=EquipmentKind.SHIELD)
        EquipmentFactory(unit=unit, kind=EquipmentKind.RADIO)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(UNITS, {"ready": "false"})
    assert response.json()["count"] == n_units
    return len(ctx.captured_queries)


def test_units_list_query_count_does_not_grow_with_rows(
    tianhe_admin, tianhe_street, django_assert_max_num_queries
):
    token = Token.objects.create(user=tianhe_admin)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    few = _list_queries(client, 5, tianhe_street)
    many = _list_queries(client, 30, tianhe_street)

    assert few == many
    # token + staff scope + count + page
    with django_assert_max_num_queries(5):
        client.get(UNITS)


# --- detail --------------------------------------------------------------------


def test_unit_detail_returns_members_equipment_and_readiness(superuser, near_unit, near_member):
    give_full_kit(near_unit)
    off_duty = MemberFactory(unit=near_unit)
    second = MemberFactory(unit=near_unit, on_duty=True)

    response = client_for(superuser).get(f"{UNITS}{near_unit.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["code"] == near_unit.code
    assert body["on_duty_count"] == 2
    assert body["kit_complete"] is True
    assert body["ready"] is True
    assert {m["id"] for m in body["members"]} == {near_member.pk, off_duty.pk, second.pk}
    assert {e["kind"] for e in body["equipment"]} == set(STANDARD_KIT)
    shield = next(e for e in body["equipment"] if e["kind"] == "shield")
    assert shield["quantity"] == STANDARD_KIT[EquipmentKind.SHIELD]
    assert shield["kind_display"] == "盾牌"


def test_unit_detail_of_a_not_ready_unit(superuser, near_unit):
    body = client_for(superuser).get(f"{UNITS}{near_unit.pk}/").json()

    assert (body["on_duty_count"], body["kit_complete"], body["ready"]) == (0, False, False)
    assert body["members"] == []
    assert body["equipment"] == []


def test_unit_detail_runs_a_fixed_number_of_queries(
    superuser, near_unit, django_assert_max_num_queries
):
    for _ in range(8):
        MemberFactory(unit=near_unit)
    give_full_kit(near_unit)
    client = client_for(superuser)

    # unit + members + equipment
    with django_assert_max_num_queries(3):
        assert client.get(f"{UNITS}{near_unit.pk}/").status_code == 200


def test_unit_outside_the_scope_is_404_not_403(haizhu_admin, near_unit):
    response = client_for(haizhu_admin).get(f"{UNITS}{near_unit.pk}/")

    assert response.status_code == 404


def test_out_of_scope_and_missing_units_answer_the_same(haizhu_admin, near_unit):
    client = client_for(haizhu_admin)

    hidden = client.get(f"{UNITS}{near_unit.pk}/")
    missing = client.get(f"{UNITS}{near_unit.pk + 1000}/")

    assert (hidden.status_code, hidden.json()) == (missing.status_code, missing.json())


@pytest.mark.parametrize("pk", ["abc", "99999999999999999999999"])
def test_a_malformed_or_huge_unit_id_is_404(superuser, near_unit, pk):
    assert client_for(superuser).get(f"{UNITS}{pk}/").status_code == 404


# --- schema --------------------------------------------------------------------


def test_openapi_schema_lists_the_units_endpoints(api):
    response = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/units/" in paths
    assert "/api/v1/units/{id}/" in paths
    assert "/api/v1/auth/token/" in paths


def test_swagger_page_uses_only_local_static_files(api):
    response = api.get("/api/v1/schema/swagger/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert not re.search(r"https?://", html), re.findall(r"https?://\S+", html)
    assert "/static/drf_spectacular_sidecar/" in html
