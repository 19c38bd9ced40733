def test_the_home_page_links_every_part_of_the_product_in_chinese(client):
    page = client.get("/").content.decode()
    for link in ("/m/", "/admin/", "/review/", "/api/v1/schema/swagger/"):
        assert f'href="{link}"' in page
    assert "最小应急处置单元协同指挥" in page


def test_the_home_page_links_a_live_view_of_incidents(client):
    assert 'href="/review/incidents/"' in client.get("/").content.decode()


def test_each_role_is_offered_only_what_it_may_open(client, tianhe, tianhe_street):
    """A unit leader was offered the review pages (403) and staff the member app (403)."""
    from django.contrib.auth import get_user_model

    from tests.factories import MemberFactory, StaffFactory, UnitFactory
    from units.models import StaffProfile

    unit = UnitFactory(region=tianhe_street)
    leader = StaffFactory(role=StaffProfile.Role.UNIT_LEADER, region=tianhe_street, unit=unit)
    district = StaffFactory(role=StaffProfile.Role.DISTRICT_ADMIN, region=tianhe)
    member_user = get_user_model().objects.create(username="m13900000009")
    MemberFactory(unit=unit, user=member_user)

    def links(user) -> set[str]:
        client.force_login(user)
        page = client.get("/").content.decode()
        return {link for link in ("/m/", "/admin/", "/review/") if f'href="{link}"' in page}

    assert links(leader.user) == {"/admin/"}
    assert links(district.user) == {"/admin/", "/review/"}
    assert links(member_user) == {"/m/"}
    for user, allowed in ((leader.user, {"/admin/"}), (district.user, {"/admin/", "/review/"})):
        client.force_login(user)
        for link in {"/admin/", "/review/", "/m/"} - allowed:
            assert client.get(link).status_code in (302, 403), link
        for link in allowed:
            assert client.get(link, follow=True).status_code == 200, link
