"""Public share links: the Share panel on an image page, and the page and file a link opens without login."""

from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Membership
from accounts.services.teams import team_create
from generations.models import ShareLink
from generations.sharing import share_link_create
from tests.factories import GalleryImageFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
REVOKE_BUTTON = ">Revoke</button>"


class MetaTags(HTMLParser):
    """The page's <meta> tags, by property or name."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        key = attributes.get("property") or attributes.get("name")
        if tag == "meta" and key:
            self.tags[key] = attributes.get("content") or ""


@pytest.fixture
def people():
    """A shared team with one person in each role, and someone from another team."""
    owner = UserFactory(username="olive")
    team = team_create(user=owner, name="Lighthouse Co")
    people = {"owner": owner, "team": team, "outsider": UserFactory(username="oscar")}
    for role, name in [("admin", "ada"), ("member", "mia"), ("member", "max"), ("viewer", "vic")]:
        user = UserFactory(username=name)
        Membership.objects.create(user=user, team=team, role=role)
        people[name] = user
    return people


@pytest.fixture
def image(people):
    return GalleryImageFactory(
        job__created_by=people["mia"],
        job__team=people["team"],
        job__prompt="a lighthouse on a cliff at dusk",
        job__negative_prompt="fog",
        job__steps=42,
        job__cfg_scale=9.5,
        job__sampler="K_EULER",
        job__style_preset="analog-film",
        seed=424242,
    )


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def shares_url(image) -> str:
    return reverse("generations:image-shares", args=[image.pk])


def page_url(link) -> str:
    return reverse("generations:share", args=[link.token])


def file_url(link) -> str:
    return reverse("generations:share-image", args=[link.token])


def make_link(image, user, show_details=False, expires_at=None) -> ShareLink:
    return share_link_create(image=image, user=user, show_details=show_details, expires_at=expires_at)


def test_a_member_creates_a_link_and_the_panel_shows_its_absolute_url(people, image):
    response = client_of(people["mia"]).post(
        shares_url(image), {"show_details": "on", "expires": "7"}, headers=HTMX
    )

    assert response.status_code == 201
    link = ShareLink.objects.get(image=image)
    assert link.created_by == people["mia"] and link.team == people["team"] and link.show_details
    assert timedelta(days=6, hours=23) < link.expires_at - timezone.now() <= timedelta(days=7)
    html = response.content.decode()
    assert f'value="http://testserver/share/{link.token}/"' in html
    assert "Link created" in html and "by mia" in html and REVOKE_BUTTON in html
    assert "<html" not in html  # a fragment for the panel, not a page


def test_a_viewer_sees_the_links_but_is_refused_when_creating_one(people, image):
    link = make_link(image, people["mia"])
    viewer = client_of(people["vic"])

    panel = viewer.get(shares_url(image), headers=HTMX).content.decode()
    refused = viewer.post(shares_url(image), {"expires": "never"}, headers=HTMX)

    assert f"/share/{link.token}/" in panel
    assert "Create public link" not in panel and REVOKE_BUTTON not in panel
    assert "As viewer of Lighthouse Co you can&#x27;t share an image by public link" in panel
    assert refused.status_code == 403
    assert ShareLink.objects.filter(image=image).count() == 1


def test_anyone_opens_a_link_without_signing_in_and_sees_the_prompt_only_when_it_was_chosen(people, image):
    with_details = make_link(image, people["mia"], show_details=True)
    image_only = make_link(image, people["mia"], show_details=False)
    anonymous = Client()

    detailed = anonymous.get(page_url(with_details))
    plain = anonymous.get(page_url(image_only))

    assert detailed.status_code == plain.status_code == 200
    detailed_html, plain_html = detailed.content.decode(), plain.content.decode()
    assert f'src="http://testserver{file_url(with_details)}"' in detailed_html
    assert f'src="http://testserver{file_url(image_only)}"' in plain_html
    for fact in ["a lighthouse on a cliff at dusk", "fog", "424242", "42", "9.5", "Euler", "Analog film"]:
        assert fact in detailed_html
    # The settings as people write them, not the API's names.
    assert "K_EULER" not in detailed_html and "analog-film" not in detailed_html
    assert "lighthouse" not in plain_html and "fog" not in plain_html and "424242" not in plain_html
    assert "Sign in" in plain_html


def test_the_page_carries_preview_tags_whose_absolute_image_url_serves_the_png(people, image):
    link = make_link(image, people["mia"], show_details=True)
    anonymous = Client()

    page = anonymous.get(page_url(link))
    tags = MetaTags(page.content.decode()).tags
    og_image = urlsplit(tags["og:image"])
    png = anonymous.get(og_image.path)

    assert (og_image.scheme, og_image.netloc) == ("http", "testserver")
    assert og_image.path == f"/share/{link.token}/image.png" and "/media/" not in tags["og:image"]
    assert tags["og:title"] == "a lighthouse on a cliff at dusk"
    assert tags["og:description"] and tags["og:type"] == "website"
    assert (tags["og:image:width"], tags["og:image:height"]) == ("512", "512")
    assert tags["twitter:card"] == "summary_large_image" and tags["twitter:image"] == tags["og:image"]
    assert tags["robots"] == "noindex"
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    with image.image.open("rb") as stored:
        assert b"".join(png.streaming_content) == stored.read()
    assert png["Cache-Control"] == "no-store" and page["Cache-Control"] == "no-store"


def test_the_preview_tags_of_an_image_only_link_keep_the_prompt_private(people, image):
    link = make_link(image, people["mia"], show_details=False)

    tags = MetaTags(Client().get(page_url(link)).content.decode()).tags

    assert not any("lighthouse" in content for content in tags.values())
    assert tags["og:title"] == "An image shared from Studio"


def test_an_expired_link_answers_404_for_the_page_and_the_image(people, image):
    link = ShareLink.objects.create(
        image=image,
        team=image.team,
        created_by=people["mia"],
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    anonymous = Client()

    assert anonymous.get(page_url(link)).status_code == 404
    assert anonymous.get(file_url(link)).status_code == 404


def test_an_unknown_token_answers_404(db):
    assert Client().get("/share/not-a-real-token-at-all/").status_code == 404
    assert Client().get("/share/not-a-real-token-at-all/image.png").status_code == 404


def test_a_revoked_link_answers_404_from_the_next_request_on(people, image):
    link = make_link(image, people["mia"])
    anonymous = Client()
    assert anonymous.get(page_url(link)).status_code == 200
    assert anonymous.get(file_url(link)).status_code == 200

    response = client_of(people["mia"]).post(
        reverse("generations:share-revoke", args=[link.pk]), headers=HTMX
    )

    assert response.status_code == 200
    assert f"/share/{link.token}/" not in response.content.decode()  # gone from the panel
    assert anonymous.get(page_url(link)).status_code == 404
    assert anonymous.get(file_url(link)).status_code == 404


def test_another_teams_member_can_neither_see_nor_create_nor_revoke_the_images_links(people, image):
    link = make_link(image, people["mia"])
    outsider = client_of(people["outsider"])

    assert outsider.get(shares_url(image), headers=HTMX).status_code == 404
    assert outsider.post(shares_url(image), {"expires": "never"}, headers=HTMX).status_code == 404
    assert outsider.post(reverse("generations:share-revoke", args=[link.pk])).status_code == 404

    assert list(ShareLink.objects.filter(image=image).live()) == [link]


def test_a_removed_member_gets_404_on_the_panel_and_their_links_can_still_be_revoked(people, image):
    link = make_link(image, people["mia"])
    Membership.objects.filter(user=people["mia"], team=people["team"]).delete()

    assert client_of(people["mia"]).get(shares_url(image)).status_code == 404
    assert (
        client_of(people["mia"]).post(reverse("generations:share-revoke", args=[link.pk])).status_code == 404
    )
    admin = client_of(people["ada"])
    assert admin.post(reverse("generations:share-revoke", args=[link.pk]), headers=HTMX).status_code == 200
    assert Client().get(page_url(link)).status_code == 404


def test_an_admin_revokes_a_members_link(people, image):
    link = make_link(image, people["mia"])

    panel = client_of(people["ada"]).get(shares_url(image), headers=HTMX).content.decode()
    response = client_of(people["ada"]).post(reverse("generations:share-revoke", args=[link.pk]))

    assert REVOKE_BUTTON in panel
    assert response.status_code == 302
    link.refresh_from_db()
    assert link.revoked_at is not None


def test_a_member_cannot_revoke_another_members_link(people, image):
    link = make_link(image, people["mia"])
    other = client_of(people["max"])

    panel = other.get(shares_url(image), headers=HTMX).content.decode()
    response = other.post(reverse("generations:share-revoke", args=[link.pk]), headers=HTMX)

    assert f"/share/{link.token}/" in panel and REVOKE_BUTTON not in panel
    assert response.status_code == 403
    assert (
        "Only the person who made this link, or an admin or owner of Lighthouse Co"
        in response.content.decode()
    )
    assert Client().get(page_url(link)).status_code == 200


def test_creating_and_revoking_are_recorded_in_the_audit_log_without_the_token(people, image):
    mia = client_of(people["mia"])
    mia.post(shares_url(image), {"expires": "never"}, headers=HTMX)
    link = ShareLink.objects.get(image=image)
    revoke = reverse("generations:share-revoke", args=[link.pk])
    client_of(people["owner"]).post(revoke, headers=HTMX)
    client_of(people["owner"]).post(revoke, headers=HTMX)  # twice: nothing more happens

    events = list(
        AuditEvent.objects.filter(team=people["team"], action__startswith="share.").order_by("created_at")
    )

    assert [(e.action, e.actor) for e in events] == [
        ("share.created", people["mia"]),
        ("share.revoked", people["owner"]),
    ]
    assert "a lighthouse on a cliff" in events[0].summary and "without expiry" in events[0].summary
    assert "made by mia" in events[1].summary
    assert all(link.token not in e.summary for e in events)


def test_a_chosen_date_keeps_the_link_working_through_that_day(people, image):
    last_day = timezone.localdate() + timedelta(days=3)

    client_of(people["mia"]).post(
        shares_url(image), {"expires": "date", "expires_on": last_day.isoformat()}, headers=HTMX
    )

    link = ShareLink.objects.get(image=image)
    assert timezone.localtime(link.expires_at).date() == last_day + timedelta(days=1)
    assert timezone.localtime(link.expires_at - timedelta(seconds=1)).date() == last_day


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"expires": "date", "expires_on": "2001-01-01"}, "That day has passed"),
        ({"expires": "date", "expires_on": ""}, "Choose the last day the link should work"),
        ({"expires": "date", "expires_on": "9999-12-31"}, "Choose a day within a year"),
        ({"expires": "date", "expires_on": "not a date"}, "Enter a valid date"),
        ({"expires": "7", "expires_on": "2099-01-01"}, "Choose “On a date” to use this date"),
        ({"expires": "forever"}, "Select a valid choice"),
    ],
)
def test_a_wrong_expiry_is_refused_with_a_message_at_the_field(people, image, data, message):
    response = client_of(people["mia"]).post(shares_url(image), data, headers=HTMX)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ShareLink.objects.filter(image=image).exists()


def test_the_image_page_loads_the_panel_and_sharing_works_without_javascript(people, image):
    mia = client_of(people["mia"])

    detail = mia.get(image.url).content.decode()
    created = mia.post(shares_url(image), {"show_details": "on", "expires": "30"})
    page = mia.get(shares_url(image))

    assert f'hx-get="{shares_url(image)}"' in detail and f'href="{shares_url(image)}"' in detail
    assert created.status_code == 302 and created["Location"] == shares_url(image)
    link = ShareLink.objects.get(image=image)
    assert page.status_code == 200 and "<html" in page.content.decode()
    assert f"/share/{link.token}/" in page.content.decode()


def test_the_panel_lists_only_live_links_in_a_fixed_number_of_queries(
    people, image, django_assert_max_num_queries
):
    live = [make_link(image, people["mia"]) for _ in range(5)]
    expired = ShareLink.objects.create(
        image=image, team=image.team, created_by=people["max"], expires_at=timezone.now() - timedelta(days=1)
    )
    revoked = ShareLink.objects.create(image=image, team=image.team, created_by=people["max"])
    revoked.revoked_at = timezone.now()
    revoked.save()
    ada = client_of(people["ada"])
    ada.get(reverse("generations:gallery"))  # the session is warm

    with django_assert_max_num_queries(8):
        html = ada.get(shares_url(image), headers=HTMX).content.decode()

    assert all(f"/share/{link.token}/" in html for link in live)
    assert f"/share/{expired.token}/" not in html and f"/share/{revoked.token}/" not in html


def test_signing_in_is_needed_for_the_panel(image):
    response = Client().get(shares_url(image))

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
