"""Managing a team: roles, removal, leaving, transferring ownership, renaming, deleting, the audit log."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Membership, Team, User
from accounts.services.teams import (
    TeamRuleBroken,
    audit_record,
    membership_leave,
    membership_remove,
    membership_role_set,
    ownership_transfer,
    team_switch,
)
from generations.models import GalleryImage, GenerationJob
from tests.factories import GalleryImageFactory, UserFactory
from tests.membership_factories import InviteFactory, MembershipFactory, TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def team() -> Team:
    return TeamFactory(name="Poster studio")


@pytest.fixture
def owner(team) -> Membership:
    return MembershipFactory(team=team, role="owner", user__username="olga")


@pytest.fixture
def admin(team) -> Membership:
    return MembershipFactory(team=team, role="admin", user__username="adam")


@pytest.fixture
def member(team) -> Membership:
    return MembershipFactory(team=team, role="member", user__username="mia")


@pytest.fixture
def viewer(team) -> Membership:
    return MembershipFactory(team=team, role="viewer", user__username="vic")


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def role_of(membership: Membership) -> str:
    return Membership.objects.get(pk=membership.pk).role


def page(client: Client, team: Team) -> str:
    response = client.get(reverse("teams:settings", args=[team.pk]))
    assert response.status_code == 200
    return response.content.decode()


def actions(team: Team) -> list[str]:
    return list(
        AuditEvent.objects.filter(team=team).order_by("created_at", "pk").values_list("action", flat=True)
    )


# Roles


def test_an_owner_changes_a_members_role_and_the_audit_log_records_it(team, owner, member):
    client = client_for(owner.user)
    response = client.post(
        reverse("teams:member-role", args=[team.pk, member.pk]), {f"m{member.pk}-role": "viewer"}, follow=True
    )
    assert role_of(member) == "viewer"
    assert "mia is now viewer." in response.content.decode()
    event = AuditEvent.objects.get(team=team, action=AuditEvent.Action.ROLE_CHANGED)
    assert event.actor == owner.user and event.summary == "mia: Member → Viewer"


def test_an_admin_cannot_demote_an_owner(team, owner, admin):
    client = client_for(admin.user)
    response = client.post(
        reverse("teams:member-role", args=[team.pk, owner.pk]), {f"m{owner.pk}-role": "member"}, follow=True
    )
    assert role_of(owner) == "owner"
    assert "Only an owner can change the role of an owner." in response.content.decode()
    with pytest.raises(TeamRuleBroken):
        membership_role_set(actor=admin, membership=owner, role="viewer")


def test_an_admin_cannot_make_anyone_owner(team, owner, admin, member):
    client = client_for(admin.user)
    response = client.post(
        reverse("teams:member-role", args=[team.pk, member.pk]), {f"m{member.pk}-role": "owner"}, follow=True
    )
    assert role_of(member) == "member"
    assert "mia: You can’t give that role." in response.content.decode().replace("&#x27;", "’").replace(
        "'", "’"
    )
    with pytest.raises(TeamRuleBroken, match="Only an owner can make someone an owner"):
        membership_role_set(actor=admin, membership=member, role="owner")


def test_an_admin_changes_roles_below_owner(team, owner, admin, member):
    client_for(admin.user).post(
        reverse("teams:member-role", args=[team.pk, member.pk]), {f"m{member.pk}-role": "admin"}
    )
    assert role_of(member) == "admin"


def test_the_admins_role_select_offers_only_roles_below_owner_and_no_select_for_owners(
    team, owner, admin, member
):
    html = page(client_for(admin.user), team)
    assert f'name="m{member.pk}-role"' in html
    assert f'name="m{owner.pk}-role"' not in html  # the owner's row is not editable by an admin
    member_row = html.split(f'id="member-{member.pk}"')[1].split("</tr>")[0]
    assert 'value="owner"' not in member_row and 'value="viewer"' in member_row
    owner_row = html.split(f'id="member-{owner.pk}"')[1].split("</tr>")[0]
    assert "Remove olga" not in owner_row and "Owner" in owner_row
    assert "Remove mia" in member_row


def test_the_last_owner_cannot_be_demoted(team, owner, member):
    with pytest.raises(TeamRuleBroken, match="must keep at least one owner"):
        membership_role_set(actor=owner, membership=owner, role="admin")
    assert role_of(owner) == "owner"


def test_an_owner_may_step_down_when_another_owner_remains(team, owner, member):
    membership_role_set(actor=owner, membership=member, role="owner")
    membership_role_set(actor=owner, membership=owner, role="admin")
    assert (role_of(owner), role_of(member)) == ("admin", "owner")


def test_members_and_viewers_cannot_change_roles_or_remove_anyone(team, owner, member, viewer):
    for acting, target in ((member, viewer), (viewer, member)):
        client = client_for(acting.user)
        role = client.post(
            reverse("teams:member-role", args=[team.pk, target.pk]), {f"m{target.pk}-role": "admin"}
        )
        remove = client.post(reverse("teams:member-remove", args=[team.pk, target.pk]))
        assert role.status_code == 403 and remove.status_code == 403
        assert "can't change roles" in role.content.decode().replace("&#x27;", "'")
    assert Membership.objects.filter(team=team).count() == 3
    assert (role_of(member), role_of(viewer)) == ("member", "viewer")


def test_a_viewer_sees_the_members_but_no_management_controls(team, owner, viewer):
    html = page(client_for(viewer.user), team)
    assert "olga" in html and "vic" in html
    for control in (">Remove</button>", '-role"', "Create invite link", ">Audit log</a>", ">Rename</button>"):
        assert control not in html
    assert "Delete Poster studio" not in html and "Transfer ownership</button>" not in html
    assert "Leave Poster studio" in html
    assert "Who may do what" in html  # the role matrix stays for everyone


def test_a_stranger_gets_404_on_the_team_page_and_every_action(team, owner, member):
    stranger = client_for(UserFactory(username="sam"))
    urls = [
        ("get", reverse("teams:settings", args=[team.pk])),
        ("get", reverse("teams:audit", args=[team.pk])),
        ("post", reverse("teams:member-role", args=[team.pk, member.pk])),
        ("post", reverse("teams:member-remove", args=[team.pk, member.pk])),
        ("post", reverse("teams:make-owner", args=[team.pk, member.pk])),
        ("post", reverse("teams:rename", args=[team.pk])),
        ("post", reverse("teams:leave", args=[team.pk])),
        ("post", reverse("teams:delete", args=[team.pk])),
    ]
    for method, url in urls:
        assert getattr(stranger, method)(url).status_code == 404, url
    assert Membership.objects.filter(team=team).count() == 2


def test_a_member_of_another_team_cannot_be_touched_through_this_one(team, owner):
    other = MembershipFactory(role="member")
    response = client_for(owner.user).post(reverse("teams:member-remove", args=[team.pk, other.pk]))
    assert response.status_code == 404
    assert Membership.objects.filter(pk=other.pk).exists()


# Removal


def test_an_admin_cannot_remove_an_owner(team, owner, admin):
    response = client_for(admin.user).post(
        reverse("teams:member-remove", args=[team.pk, owner.pk]), follow=True
    )
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert "Only an owner can remove an owner." in response.content.decode()


def test_removing_yourself_points_to_leave(team, owner, admin):
    with pytest.raises(TeamRuleBroken, match="use Leave team"):
        membership_remove(actor=admin, membership=admin)


def test_a_removed_member_gets_404_on_the_teams_pages_fragments_media_and_downloads(team, owner, member):
    image = GalleryImageFactory(
        team=team, created_by=member.user, job__team=team, job__created_by=member.user
    )
    team_switch(user=member.user, team=team)
    urls = [
        reverse("generations:image-detail", args=[image.pk]),
        reverse("generations:job-card", args=[image.job_id]),
        reverse("generations:media", kwargs={"path": image.image.name}),
        reverse("generations:media", kwargs={"path": image.thumbnail.name}),
        reverse("generations:image-download", args=[image.pk]),
        reverse("teams:settings", args=[team.pk]),
    ]
    removed = client_for(member.user)
    for url in urls:
        assert removed.get(url).status_code == 200, url
    assert removed.get(urls[1], HTTP_HX_REQUEST="true").status_code == 286

    response = client_for(owner.user).post(
        reverse("teams:member-remove", args=[team.pk, member.pk]), follow=True
    )
    assert "mia was removed." in response.content.decode()

    for url in urls:
        assert removed.get(url).status_code == 404, url
    assert removed.get(urls[1], HTTP_HX_REQUEST="true").status_code == 404
    # Their next page lands on their personal team, and their images stay with the team, credited to them.
    assert User.objects.get(pk=member.user.pk).current_team_id is None
    assert removed.get(reverse("generations:create")).status_code == 200
    kept = GalleryImage.objects.get(pk=image.pk)
    assert kept.team_id == team.pk and kept.created_by_id == member.user.pk
    assert client_for(owner.user).get(urls[0]).status_code == 200
    assert AuditEvent.objects.get(team=team, action=AuditEvent.Action.MEMBER_REMOVED).summary == (
        "Removed mia (member)"
    )


def test_removal_leaves_the_current_team_of_someone_working_elsewhere_alone(team, owner, member):
    personal = member.user.current_team
    membership_remove(actor=owner, membership=member)
    assert User.objects.get(pk=member.user.pk).current_team == personal


# Leaving


def test_a_member_leaves_and_lands_on_their_personal_team(team, owner, member):
    team_switch(user=member.user, team=team)
    client = client_for(member.user)
    response = client.post(reverse("teams:leave", args=[team.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("generations:create")
    assert not Membership.objects.filter(pk=member.pk).exists()
    assert User.objects.get(pk=member.user.pk).current_team_id is None
    assert client.get(reverse("teams:settings", args=[team.pk])).status_code == 404
    assert actions(team)[-1] == AuditEvent.Action.MEMBER_LEFT


def test_the_last_owner_cannot_leave(team, owner, member):
    response = client_for(owner.user).post(reverse("teams:leave", args=[team.pk]), follow=True)
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert "You are the last owner of Poster studio: transfer ownership" in response.content.decode()


def test_an_owner_may_leave_when_another_owner_remains(team, owner, member):
    membership_role_set(actor=owner, membership=member, role="owner")
    membership_leave(membership=owner)
    assert list(Membership.objects.filter(team=team).values_list("role", flat=True)) == ["owner"]


def test_a_personal_team_cannot_be_left(user):
    personal = Membership.objects.get(user=user, team__is_personal=True)
    response = client_for(user).post(reverse("teams:leave", args=[personal.team_id]))
    assert response.status_code == 403
    assert "A personal team is private" in response.content.decode()
    with pytest.raises(TeamRuleBroken, match="cannot be left"):
        membership_leave(membership=personal)
    assert Membership.objects.filter(pk=personal.pk).exists()


def test_a_personal_team_page_offers_no_invites_leave_or_delete(user):
    html = page(client_for(user), user.current_team)
    assert "Create invite link" not in html and "Leave " + user.current_team.name not in html
    assert "Delete " + user.current_team.name not in html
    assert ">Rename</button>" in html  # a personal team may still be renamed


# Ownership


def test_transferring_ownership_makes_the_member_owner_and_the_owner_admin(team, owner, member):
    client = client_for(owner.user)
    response = client.post(reverse("teams:make-owner", args=[team.pk, member.pk]), follow=True)
    assert (role_of(owner), role_of(member)) == ("admin", "owner")
    assert "mia now owns Poster studio; you are an admin." in response.content.decode()
    assert actions(team)[-1] == AuditEvent.Action.OWNERSHIP_TRANSFERRED
    # The former owner is an admin now: deleting the team is no longer theirs to do.
    assert (
        client.post(reverse("teams:delete", args=[team.pk]), {"confirm": "Poster studio"}).status_code == 403
    )


def test_only_an_owner_can_transfer_ownership(team, owner, admin, member):
    response = client_for(admin.user).post(reverse("teams:make-owner", args=[team.pk, member.pk]))
    assert response.status_code == 403
    assert (role_of(owner), role_of(member)) == ("owner", "member")
    with pytest.raises(TeamRuleBroken):
        ownership_transfer(actor=admin, to=member)


# Renaming and deleting


def test_renaming_the_team(team, owner, admin):
    response = client_for(admin.user).post(
        reverse("teams:rename", args=[team.pk]), {"name": " Print shop "}, follow=True
    )
    assert Team.objects.get(pk=team.pk).name == "Print shop"
    assert "The team is now called “Print shop”." in response.content.decode()
    event = AuditEvent.objects.get(team=team, action=AuditEvent.Action.TEAM_RENAMED)
    assert event.summary == "Renamed “Poster studio” to “Print shop”" and event.actor == admin.user


def test_renaming_to_nothing_says_so_at_the_field(team, owner):
    response = client_for(owner.user).post(reverse("teams:rename", args=[team.pk]), {"name": "   "})
    assert response.status_code == 200
    assert (
        'id="id_name_error"' in response.content.decode()
        and "Give the team a name." in response.content.decode()
    )
    assert Team.objects.get(pk=team.pk).name == "Poster studio"


def test_deleting_the_team_needs_its_exact_name(team, owner):
    response = client_for(owner.user).post(reverse("teams:delete", args=[team.pk]), {"confirm": "poster"})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_confirm_error"' in html and "Type “Poster studio” exactly." in html
    assert Team.objects.filter(pk=team.pk).exists()


def test_an_admin_cannot_delete_the_team(team, owner, admin):
    response = client_for(admin.user).post(
        reverse("teams:delete", args=[team.pk]), {"confirm": "Poster studio"}
    )
    assert response.status_code == 403
    assert Team.objects.filter(pk=team.pk).exists()


def test_deleting_the_team_deletes_its_jobs_images_and_files(
    team, owner, member, settings, django_capture_on_commit_callbacks
):
    image = GalleryImageFactory(
        team=team, created_by=member.user, job__team=team, job__created_by=member.user
    )
    kept = GalleryImageFactory()  # someone else's, in their personal team
    files = [Path(settings.MEDIA_ROOT) / image.image.name, Path(settings.MEDIA_ROOT) / image.thumbnail.name]
    assert all(file.exists() for file in files)
    team_switch(user=member.user, team=team)
    InviteFactory(team=team)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner.user).post(
            reverse("teams:delete", args=[team.pk]), {"confirm": "Poster studio"}
        )

    assert response.status_code == 302 and response["Location"] == reverse("generations:create")
    assert not Team.objects.filter(pk=team.pk).exists()
    assert not GenerationJob.objects.filter(pk=image.job_id).exists()
    assert not GalleryImage.objects.filter(pk=image.pk).exists()
    assert not any(file.exists() for file in files)
    assert (
        GalleryImage.objects.filter(pk=kept.pk).exists()
        and (Path(settings.MEDIA_ROOT) / kept.image.name).exists()
    )
    # The member who was working in it lands on their personal team.
    assert client_for(member.user).get(reverse("generations:create")).status_code == 200
    assert User.objects.get(pk=member.user.pk).current_team_id is None


def test_a_personal_team_cannot_be_deleted(user):
    response = client_for(user).post(
        reverse("teams:delete", args=[user.current_team.pk]), {"confirm": user.current_team.name}
    )
    assert response.status_code == 403
    assert Team.objects.filter(pk=user.current_team.pk).exists()


# The team page and the audit log


def test_the_team_page_shows_members_roles_and_when_they_joined(team, owner, member):
    html = page(client_for(member.user), team)
    row = html.split(f'id="member-{owner.pk}"')[1].split("</tr>")[0]
    assert "olga" in row and "Owner" in row and timezone.localdate().strftime("%Y") in row
    assert "mia" in html and "(you)" in html


def test_the_team_page_links_the_audit_log_for_admins_only(team, owner, member):
    assert reverse("teams:audit", args=[team.pk]) in page(client_for(owner.user), team)
    assert reverse("teams:audit", args=[team.pk]) not in page(client_for(member.user), team)


def test_the_team_page_costs_the_same_queries_for_many_members_and_invites(
    team, owner, django_assert_max_num_queries
):
    client = client_for(owner.user)
    team_switch(user=owner.user, team=team)
    MembershipFactory(team=team)
    InviteFactory(team=team)
    with django_assert_max_num_queries(12) as few:
        page(client, team)
    for _ in range(8):
        MembershipFactory(team=team)
        InviteFactory(team=team, email="someone@example.com")
    with django_assert_max_num_queries(len(few.captured_queries)):
        page(client, team)


def test_the_audit_page_shows_who_did_what_newest_first_fifty_a_page(team, owner, member):
    start = timezone.now() - timedelta(days=1)
    for number in range(51):
        event = audit_record(
            team=team, actor=owner.user, action=AuditEvent.Action.TEAM_RENAMED, summary=f"step {number}"
        )
        AuditEvent.objects.filter(pk=event.pk).update(created_at=start + timedelta(minutes=number))
    membership_remove(actor=owner, membership=member)

    client = client_for(owner.user)
    first = client.get(reverse("teams:audit", args=[team.pk])).content.decode()
    assert first.count("<tr>") == 1 + 50  # the header row, then 50 events
    assert first.index("Removed mia (member)") < first.index("step 50") < first.index("step 2")
    assert "Member removed" in first and "olga" in first
    assert "step 1<" not in first and "Page 1 of 2" in first
    second = client.get(reverse("teams:audit", args=[team.pk]), {"page": 2}).content.decode()
    assert "step 0" in second and "step 1<" in second and "step 50" not in second


def test_the_audit_page_is_for_admins_only(team, owner, admin, member):
    assert client_for(admin.user).get(reverse("teams:audit", args=[team.pk])).status_code == 200
    response = client_for(member.user).get(reverse("teams:audit", args=[team.pk]))
    assert response.status_code == 403
    assert "can't read the audit log" in response.content.decode().replace("&#x27;", "'")
