def test_the_home_page_links_every_part_of_the_product_in_chinese(client):
    page = client.get("/").content.decode()
    for link in ("/m/", "/admin/", "/review/", "/api/v1/schema/swagger/"):
        assert f'href="{link}"' in page
    assert "最小应急处置单元协同指挥" in page
