"""The gallery's thumbnails come as signed links (generations.media_views): they open with no session and
no query, for one file only, for a bounded time; past it, or edited, they open for members alone."""

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from generations import media_views
from tests.library_factories import library_image
from tests.membership_factories import TeamFactory
from tests.spend_factories import client_for, join

pytestmark = pytest.mark.django_db
GALLERY = reverse("generations:gallery")


def thumbnail_links(html: str) -> list[str]:
    return [unescape(src) for src in re.findall(r'<img src="([^"]+)" alt="[^"]*" loading="lazy"', html)]


def with_query(link: str, **changes: str) -> str:
    parts = urlsplit(link)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()} | changes
    return parts.path + "?" + "&".join(f"{name}={value}" for name, value in query.items())


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def two_teams():
    """Harbour (ada, bob) and Orchard (cy), each with an image; ada's gallery link to Harbour's image."""
    harbour, orchard = TeamFactory(name="Harbour"), TeamFactory(name="Orchard")
    ada, bob, cy = join(harbour, username="ada"), join(harbour, username="bob"), join(orchard, username="cy")
    ours, theirs = library_image(ada, harbour), library_image(cy, orchard)
    [link] = thumbnail_links(client_for(ada).get(GALLERY).content.decode())
    return {"ada": ada, "bob": bob, "cy": cy, "ours": ours, "theirs": theirs, "link": link}


def test_a_gallery_thumbnail_opens_from_its_link_alone_with_no_query_and_is_cached_while_valid(
    two_teams, django_assert_num_queries
):
    image, link = two_teams["ours"], two_teams["link"]
    assert urlsplit(link).path == f"/media/{image.thumbnail.name}"
    with django_assert_num_queries(0):
        response = Client().get(link)  # no session at all: the link is the permission
        served = body(response)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    with image.thumbnail.open("rb") as stored:
        assert served == stored.read()
    cache_control = response["Cache-Control"]
    assert "private" in cache_control and "immutable" in cache_control
    max_age = int(re.search(r"max-age=(\d+)", cache_control).group(1))
    assert 3_600 <= max_age <= 2 * 3_600  # until the link stops opening: one to two hours from now


def test_an_edited_signature_or_hour_opens_nothing_for_a_stranger_or_anyone_signed_out(two_teams):
    link = two_teams["link"]
    signature, hour = parse_qs(urlsplit(link).query)["sig"][0], int(parse_qs(urlsplit(link).query)["t"][0])
    tampered = ("A" if signature[0] != "A" else "B") + signature[1:]
    edited = [
        with_query(link, sig=tampered),
        with_query(link, sig=""),
        with_query(link, t=str(hour + 1)),  # the signature covers the hour: a later one is not signed
        with_query(link, t=str(hour - 1)),
        with_query(link, t="²"),
    ]
    stranger = client_for(two_teams["cy"])
    for url in edited:
        assert Client().get(url).status_code == 404, url
        assert stranger.get(url).status_code == 404, url
    assert body(Client().get(link))  # the link itself still opens


def test_a_link_from_the_page_stops_opening_after_the_next_hour_but_still_opens_for_members(
    two_teams, monkeypatch
):
    link, now = two_teams["link"], media_views._period()
    monkeypatch.setattr(media_views, "_period", lambda: now + 1)  # the next hour: still open
    assert Client().get(link).status_code == 200
    monkeypatch.setattr(media_views, "_period", lambda: now + 2)  # the hour after: expired
    assert Client().get(link).status_code == 404
    assert client_for(two_teams["cy"]).get(link).status_code == 404
    # A member's page left open that long still shows the picture: their session vouches for them.
    member = client_for(two_teams["bob"]).get(link)
    assert member.status_code == 200 and body(member)


def test_team_a_links_signature_does_not_open_team_bs_thumbnail(two_teams):
    ours, theirs, link = two_teams["ours"], two_teams["theirs"], two_teams["link"]
    moved = link.replace(ours.thumbnail.name, theirs.thumbnail.name)
    assert moved != link
    assert Client().get(moved).status_code == 404
    assert client_for(two_teams["ada"]).get(moved).status_code == 404  # ada is in Harbour, not Orchard
    # Nor another image of the same team, nor the original of the same image.
    other = library_image(two_teams["ada"], ours.team)
    assert Client().get(link.replace(str(ours.pk), str(other.pk))).status_code == 404
    assert Client().get(link.replace(ours.thumbnail.name, ours.image.name)).status_code == 404


def test_only_thumbnails_are_served_by_a_signature_even_one_studio_made(two_teams):
    """An original signed with Studio's own key (no page issues such a link) is still for members only."""
    original = two_teams["ours"].image.name
    hour = media_views._period()
    from django.conf import settings

    signature = media_views._signature(hour, original, settings.SECRET_KEY)
    url = f"/media/{original}?t={hour}&sig={signature}"
    assert Client().get(url).status_code == 404
    assert client_for(two_teams["cy"]).get(url).status_code == 404
    assert client_for(two_teams["bob"]).get(url).status_code == 200


def test_a_removed_member_without_a_link_gets_nothing_and_new_pages_give_them_none(two_teams):
    ada, ours = two_teams["ada"], two_teams["ours"]
    Membership.objects.filter(user=ada, team=ours.team).delete()
    client = client_for(ada)
    assert client.get(f"/media/{ours.thumbnail.name}").status_code == 404
    gallery = client.get(GALLERY).content.decode()
    assert ours.thumbnail.name not in gallery and str(ours.pk) not in gallery


def test_a_link_signed_before_the_secret_key_was_rotated_opens_while_the_old_key_is_kept(two_teams, settings):
    link, old_key = two_teams["link"], settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 50
    assert Client().get(link).status_code == 404
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert Client().get(link).status_code == 200
