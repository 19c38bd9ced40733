"""An API token brings its user's staff role and region: every scoped API call
(an intake POST first) reads them, and they cost two more queries each time."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.settings import api_settings
from rest_framework.test import APIRequestFactory

from tests.factories import StaffFactory, UserFactory
from units.scoping import staff_profile

pytestmark = pytest.mark.django_db


def _authenticate(key: str):
    token_auth = api_settings.DEFAULT_AUTHENTICATION_CLASSES[0]()
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {key}")
    return token_auth.authenticate(request)


def test_a_token_brings_the_staff_role_and_region_in_one_query(django_assert_num_queries):
    staff = StaffFactory()
    token = Token.objects.create(user=staff.user)

    with django_assert_num_queries(1):
        user, _token = _authenticate(token.key)
        profile = staff_profile(user)
        assert (profile.role, profile.region.path) == (staff.role, staff.region.path)


def test_a_token_of_a_user_without_a_staff_role_has_none(django_assert_num_queries):
    token = Token.objects.create(user=UserFactory())

    with django_assert_num_queries(1):
        user, _token = _authenticate(token.key)
        assert staff_profile(user) is None


def test_a_deactivated_users_token_is_still_refused():
    user = UserFactory(is_active=False)
    token = Token.objects.create(user=user)

    with pytest.raises(AuthenticationFailed):
        _authenticate(token.key)
    with pytest.raises(AuthenticationFailed):
        _authenticate("not-a-token")
