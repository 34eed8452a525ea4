"""Inviting people into a team: links, email (through a real SMTP server), expiry, revocation, reuse,
and joining as a new or an existing user."""

import email
import email.policy
import re
import socket
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Invite, Membership, Team, User
from accounts.services.invites import InviteUnusable, invite_accept
from tests.factories import UserFactory
from tests.membership_factories import InviteFactory, MembershipFactory, TeamFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-42"


@pytest.fixture
def team() -> Team:
    return TeamFactory(name="Poster studio")


@pytest.fixture
def admin(team) -> Membership:
    return MembershipFactory(team=team, role="admin", user__username="adam")


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode().replace("&#x27;", "'")


def invite_via_page(client: Client, team: Team, **fields) -> Invite:
    data = {"role": "member", "days": "7", **fields}
    response = client.post(reverse("teams:invite-create", args=[team.pk]), data)
    assert response.status_code == 302, text(response)
    return Invite.objects.filter(team=team).latest("created_at")


def join_url(invite: Invite) -> str:
    return reverse("teams:join", args=[invite.token])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_inbox(settings):
    """A real SMTP server on this machine, with Studio's mail pointed at it."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": controller.port, "timeout": 10},
        }
    }
    yield inbox
    controller.stop()


# Creating links


def test_an_admin_creates_a_link_the_team_page_lists_it_and_it_opens(team, admin):
    client = client_for(admin.user)
    invite = invite_via_page(client, team, role="viewer", days="3")
    assert (invite.role, invite.single_use, invite.created_by) == ("viewer", True, admin.user)
    assert timedelta(days=3) - timedelta(minutes=1) < invite.expires_at - timezone.now() <= timedelta(days=3)
    assert len(invite.token) >= 40  # unguessable

    html = text(client.get(reverse("teams:settings", args=[team.pk])))
    row = html.split(f'id="invite-{invite.pk}"')[1].split("</tr>")[0]
    assert "Viewer" in row and "Active" in row and "Single use" in row
    assert f'value="http://testserver{join_url(invite)}"' in row  # the whole link, to copy
    assert "Invite link created" in html

    opened = Client().get(join_url(invite))
    assert (
        opened.status_code == 200 and "Poster studio" in text(opened) and "as <strong>viewer" in text(opened)
    )


def test_the_default_lifetime_comes_from_the_settings(team, admin, settings):
    settings.INVITE_LIFETIME_DAYS = 2
    html = text(client_for(admin.user).get(reverse("teams:settings", args=[team.pk])))
    assert 'name="days" value="2"' in html


def test_bad_invite_choices_are_shown_at_their_fields(team, admin):
    client = client_for(admin.user)
    response = client.post(
        reverse("teams:invite-create", args=[team.pk]), {"role": "owner", "days": "0", "email": "nope"}
    )
    html = text(response)
    assert response.status_code == 200
    assert 'id="id_role_error"' in html and "Select a valid choice" in html
    assert 'id="id_days_error"' in html and "A link works for at least 1 day." in html
    assert 'id="id_email_error"' in html and "Enter an email address like ada@example.com" in html
    response = client.post(reverse("teams:invite-create", args=[team.pk]), {"role": "member", "days": "365"})
    assert "A link works for at most 90 days." in text(response)
    assert not Invite.objects.exists()


def test_members_and_viewers_cannot_invite_or_revoke(team, admin):
    invite = InviteFactory(team=team)
    for role in ("member", "viewer"):
        client = client_for(MembershipFactory(team=team, role=role).user)
        create = client.post(reverse("teams:invite-create", args=[team.pk]), {"role": "member", "days": "7"})
        revoke = client.post(reverse("teams:invite-revoke", args=[team.pk, invite.pk]))
        assert create.status_code == 403 and revoke.status_code == 403
        assert "can't invite people" in text(create)
        assert "Create invite link" not in text(client.get(reverse("teams:settings", args=[team.pk])))
    assert Invite.objects.get().revoked_at is None and Invite.objects.count() == 1


def test_a_personal_team_cannot_invite(user):
    response = client_for(user).post(
        reverse("teams:invite-create", args=[user.current_team.pk]), {"role": "member", "days": "7"}
    )
    assert response.status_code == 403 and "A personal team is private" in text(response)
    assert not Invite.objects.exists()


def test_another_teams_invite_cannot_be_revoked_from_here(team, admin):
    elsewhere = InviteFactory()
    response = client_for(admin.user).post(reverse("teams:invite-revoke", args=[team.pk, elsewhere.pk]))
    assert response.status_code == 404
    assert Invite.objects.get(pk=elsewhere.pk).is_usable


# Opening and accepting


def test_opening_a_link_signed_out_names_the_team_and_offers_sign_in_and_sign_up(team, admin):
    invite = InviteFactory(team=team, created_by=admin.user)
    html = text(Client().get(join_url(invite)))
    assert "adam invites you to join <strong>Poster studio</strong>" in html
    assert f'href="{reverse("accounts:login")}?next=/teams/join/{invite.token}/"' in html
    assert f'href="{reverse("accounts:signup")}?next=/teams/join/{invite.token}/"' in html
    # A join posted while signed out goes to sign-in and back.
    response = Client().post(join_url(invite))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    assert Invite.objects.get(pk=invite.pk).uses == 0


def test_an_existing_user_signs_in_through_the_link_and_joins(team, admin):
    invite = InviteFactory(team=team, role="member")
    bea = UserFactory(username="bea")
    client = Client()
    login_page = text(client.get(f"{reverse('accounts:login')}?next={join_url(invite)}"))
    assert f'name="next" value="{join_url(invite)}"' in login_page
    signed_in = client.post(
        reverse("accounts:login"), {"username": "bea", "password": PASSWORD, "next": join_url(invite)}
    )
    assert signed_in["Location"] == join_url(invite)

    page = text(client.get(join_url(invite)))
    assert "Join Poster studio as member" in page and "Signed in as bea" in page
    joined = client.post(join_url(invite), follow=True)
    assert "Welcome to Poster studio! You joined as member." in text(joined)
    assert Membership.objects.get(team=team, user=bea).role == "member"
    assert User.objects.get(pk=bea.pk).current_team == team  # working in it now
    assert Invite.objects.get(pk=invite.pk).uses == 1
    event = AuditEvent.objects.get(team=team, action=AuditEvent.Action.INVITE_ACCEPTED)
    assert event.actor == bea and event.summary == "bea joined as member"


def test_a_new_user_signs_up_through_the_link_and_joins(team, admin):
    invite = InviteFactory(team=team, role="viewer")
    client = Client()
    signup_page = text(client.get(f"{reverse('accounts:signup')}?next={join_url(invite)}"))
    assert f'name="next" value="{join_url(invite)}"' in signup_page
    assert f'login/?next={join_url(invite)}">Sign in' in signup_page  # "Sign in" keeps the invite too
    signed_up = client.post(
        reverse("accounts:signup"),
        {
            "username": "cleo",
            "email": "cleo@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "next": join_url(invite),
        },
    )
    assert signed_up.status_code == 302 and signed_up["Location"] == join_url(invite)
    client.post(join_url(invite))
    cleo = User.objects.get(username="cleo")
    assert Membership.objects.get(team=team, user=cleo).role == "viewer"
    assert Membership.objects.get(user=cleo, team__is_personal=True)  # and their own space, as always
    gallery = client.get(reverse("generations:gallery"))
    assert gallery.status_code == 200 and f'value="{team.pk}" selected' in text(gallery)


@pytest.mark.parametrize("target", ["https://evil.example/steal", "//evil.example/", "javascript:alert(1)"])
def test_signing_up_ignores_a_next_that_leaves_the_site(target):
    response = Client().post(
        f"{reverse('accounts:signup')}?next={target}",
        {"username": "dan", "email": "dan@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == reverse("generations:create")


def test_someone_already_in_the_team_is_told_so_and_no_use_is_counted(team, admin):
    invite = InviteFactory(team=team, role="viewer")
    client = client_for(admin.user)
    assert "You are already a member of Poster studio (admin)" in text(client.get(join_url(invite)))
    response = client.post(join_url(invite), follow=True)
    assert "You are already a member of Poster studio" in text(response)
    assert Membership.objects.get(pk=admin.pk).role == "admin"  # not demoted by the invite's role
    assert Invite.objects.get(pk=invite.pk).uses == 0 and Invite.objects.get(pk=invite.pk).is_usable


def test_a_single_use_link_cannot_be_used_twice(team, admin):
    invite = InviteFactory(team=team, single_use=True)
    first, second = UserFactory(), UserFactory()
    client_for(first).post(join_url(invite))
    late = client_for(second)
    for response in (late.get(join_url(invite)), late.post(join_url(invite))):
        assert response.status_code == 410
        assert "This invitation has already been used." in text(response)
    assert Membership.objects.filter(team=team, user=first).exists()
    assert not Membership.objects.filter(team=team, user=second).exists()


def test_two_people_accepting_a_single_use_link_at_once_cannot_both_join(team):
    # Both requests read the invite while it was still unused; only the conditional UPDATE decides.
    invite = InviteFactory(team=team, single_use=True)
    seen_by_first, seen_by_second = Invite.objects.get(pk=invite.pk), Invite.objects.get(pk=invite.pk)
    first, second = UserFactory(), UserFactory()
    invite_accept(user=first, invite=seen_by_first)
    with pytest.raises(InviteUnusable) as refused:
        invite_accept(user=second, invite=seen_by_second)
    assert refused.value.state == Invite.State.USED
    assert list(Membership.objects.filter(team=team).values_list("user", flat=True)) == [first.pk]
    assert Invite.objects.get(pk=invite.pk).uses == 1


def test_a_reusable_link_lets_two_people_join(team, admin):
    invite = invite_via_page(client_for(admin.user), team, reusable="on")
    assert not invite.single_use
    for person in (UserFactory(), UserFactory()):
        client_for(person).post(join_url(invite))
        assert Membership.objects.filter(team=team, user=person, role="member").exists()
    assert Invite.objects.get(pk=invite.pk).uses == 2
    html = text(client_for(admin.user).get(reverse("teams:settings", args=[team.pk])))
    assert "Reusable, used 2×" in html.split(f'id="invite-{invite.pk}"')[1].split("</tr>")[0]


def test_an_expired_link_says_so_plainly(team, admin):
    invite = InviteFactory(team=team, expires_at=timezone.now() - timedelta(minutes=1))
    person = client_for(UserFactory())
    for response in (
        Client().get(join_url(invite)),
        person.get(join_url(invite)),
        person.post(join_url(invite)),
    ):
        assert response.status_code == 410
        assert "This invitation has expired. Ask the team for a new link." in text(response)
    assert Membership.objects.filter(team=team).count() == 1


def test_a_revoked_link_says_so_and_its_invitee_never_gets_in(team, admin):
    client = client_for(admin.user)
    invite = invite_via_page(client, team)
    response = client.post(reverse("teams:invite-revoke", args=[team.pk, invite.pk]), follow=True)
    assert "The invite link was revoked" in text(response)
    row = text(response).split(f'id="invite-{invite.pk}"')[1].split("</tr>")[0]
    assert "Revoked" in row and "testserver" not in row  # no link to copy any more

    invitee = client_for(UserFactory())
    refused = invitee.post(join_url(invite))
    assert refused.status_code == 410 and "This invitation was revoked by the team." in text(refused)
    assert invitee.get(reverse("teams:settings", args=[team.pk])).status_code == 404
    again = client.post(reverse("teams:invite-revoke", args=[team.pk, invite.pk]), follow=True)
    assert "already revoked" in text(again)


def test_an_unknown_link_is_404():
    assert Client().get(reverse("teams:join", args=["not-a-real-token"])).status_code == 404


def test_the_team_page_shows_each_invites_state(team, admin):
    invites = {
        "Active": InviteFactory(team=team),
        "Used": InviteFactory(team=team, uses=1),
        "Expired": InviteFactory(team=team, expires_at=timezone.now() - timedelta(days=1)),
        "Revoked": InviteFactory(team=team, revoked_at=timezone.now()),
    }
    html = text(client_for(admin.user).get(reverse("teams:settings", args=[team.pk])))
    for state, invite in invites.items():
        row = html.split(f'id="invite-{invite.pk}"')[1].split("</tr>")[0]
        assert f'<td class="invite-state">{state}</td>' in row
        assert ("Revoke</button>" in row) == (state == "Active")


# Email


def test_an_invite_sent_by_email_arrives_with_a_link_that_joins(team, admin, smtp_inbox):
    response = client_for(admin.user).post(
        reverse("teams:invite-create", args=[team.pk]),
        {"role": "member", "days": "7", "email": "bea@example.com"},
        follow=True,
    )
    assert "Invitation sent to bea@example.com." in text(response)

    [envelope] = smtp_inbox.envelopes
    assert envelope.rcpt_tos == ["bea@example.com"]
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["To"] == "bea@example.com"
    assert message["Subject"] == "adam invites you to Poster studio on Studio"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert 'join the team "Poster studio" on Studio as member' in body
    [link] = re.findall(r"https?://\S+/teams/join/\S+/", body)
    assert link.startswith("http://testserver/")  # absolute, so it opens from a mail client

    bea = UserFactory(username="bea", email="bea@example.com")
    client = client_for(bea)
    assert "Join Poster studio as member" in text(client.get(urlsplit(link).path))
    client.post(urlsplit(link).path)
    assert Membership.objects.filter(team=team, user=bea, role="member").exists()
    sent = AuditEvent.objects.get(team=team, action=AuditEvent.Action.INVITE_SENT)
    assert sent.summary == "Sent an invite to bea@example.com as member"


def test_when_mail_cannot_be_sent_the_admin_is_told_and_the_link_still_works(team, admin, settings):
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 5},  # nothing listens there
        }
    }
    client = client_for(admin.user)
    response = client.post(
        reverse("teams:invite-create", args=[team.pk]),
        {"role": "member", "days": "7", "email": "bea@example.com"},
        follow=True,
    )
    assert response.status_code == 200
    assert "the email to bea@example.com could not be sent" in text(response)
    invite = Invite.objects.get(team=team)
    assert invite.is_usable and f"http://testserver{join_url(invite)}" in text(response)
    assert not AuditEvent.objects.filter(team=team, action=AuditEvent.Action.INVITE_SENT).exists()


# The audit log


def test_the_audit_log_shows_invites_created_sent_accepted_and_revoked(team, admin, mailoutbox):
    client = client_for(admin.user)
    invite = invite_via_page(client, team, email="bea@example.com")
    assert len(mailoutbox) == 1 and join_url(invite) in mailoutbox[0].body
    client_for(UserFactory(username="bea", email="bea@example.com")).post(join_url(invite))
    other = invite_via_page(client, team, role="viewer")
    client.post(reverse("teams:invite-revoke", args=[team.pk, other.pk]))

    html = text(client.get(reverse("teams:audit", args=[team.pk])))
    order = ["Invite revoked", "Invite link created", "Invite accepted", "Invite sent", "Invite link created"]
    positions = [html.index(label) for label in ("Invite revoked", "Invite accepted", "Invite sent")]
    assert positions == sorted(positions)  # newest first
    assert all(label in html for label in order)
    assert "bea joined as member" in html and "Revoked an invite as viewer" in html and "adam" in html
