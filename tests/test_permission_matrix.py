"""Every URL of Studio × every kind of visitor: the status each gets, and nothing of a team's work in any
answer to someone outside it.

Visitors: the team's owner, admin, member and viewer; a member removed from the team; a member of another
team only; and an anonymous visitor. Each case runs against a fresh team, so a POST that removes,
renames or deletes cannot change what the next case sees. A URL added to Studio without a row here fails
`test_every_url_is_in_the_matrix`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.models import Invite, Membership, Team
from accounts.services.teams import team_create
from generations.models import Collection, ShareLink, Upload
from tests.factories import GalleryImageFactory, UserFactory

pytestmark = pytest.mark.django_db

VISITORS = ["owner", "admin", "member", "viewer", "removed", "outsider", "anonymous"]
SECRET_PROMPT = "a violet kraken guarding the harbour"  # in the team's work only: must never leak


@dataclass
class World:
    team: Team
    users: dict[str, Any]
    image: Any
    job: Any
    upload: Upload
    share: ShareLink
    invite: Invite
    target: Membership  # the member the member-management URLs act on


@pytest.fixture
def world(tmp_path) -> World:
    users = {name: UserFactory(username=name) for name in VISITORS if name != "anonymous"}
    team = team_create(user=users["owner"], name="Harbour team")
    for role in ("admin", "member", "viewer", "removed"):
        Membership.objects.create(user=users[role], team=team, role="member" if role == "removed" else role)
        users[role].current_team = team
        users[role].save(update_fields=["current_team"])
    target_user = UserFactory(username="target")
    target = Membership.objects.create(user=target_user, team=team, role=Membership.Role.MEMBER)
    image = GalleryImageFactory(
        job__created_by=users["member"], job__team=team, team=team, job__prompt=SECRET_PROMPT
    )
    upload = Upload.objects.create(
        team=team, created_by=users["member"], image=image.image.name, width=64, height=64
    )
    share = ShareLink.objects.create(image=image, team=team, created_by=users["member"])
    invite = Invite.objects.create(
        team=team, created_by=users["owner"], expires_at=timezone.now() + timedelta(days=7)
    )
    Membership.objects.filter(user=users["removed"], team=team).delete()  # removed after they had seen it
    return World(team, users, image, image.job, upload, share, invite, target)


def visit(world: World, visitor: str) -> Client:
    client = Client()
    if visitor != "anonymous":
        client.force_login(world.users[visitor])
    return client


OK, FORBIDDEN, NOT_FOUND, LOGIN = "ok", 403, 404, "login"
MEMBERS = ("owner", "admin", "member", "viewer")


def team_scoped(allowed: tuple[str, ...]) -> dict[str, Any]:
    """A URL of the team: allowed roles succeed, other roles get 403, strangers 404, anonymous sign in."""
    expected: dict[str, Any] = {role: OK if role in allowed else FORBIDDEN for role in MEMBERS}
    return {**expected, "removed": NOT_FOUND, "outsider": NOT_FOUND, "anonymous": LOGIN}


EVERY_MEMBER = team_scoped(MEMBERS)
MAKERS = team_scoped(("owner", "admin", "member"))
ADMINS = team_scoped(("owner", "admin"))
OWNER = team_scoped(("owner",))
SIGNED_IN = {**dict.fromkeys(VISITORS, OK), "anonymous": LOGIN}  # not about the team: their own things
PUBLIC = dict.fromkeys(VISITORS, OK)


@dataclass
class Case:
    method: str
    args: Callable[[World], list[Any]] = lambda w: []
    expected: dict[str, Any] = field(default_factory=lambda: EVERY_MEMBER)
    data: Callable[[World], dict[str, Any]] = lambda w: {}
    query: str = ""


def team_id(w: World) -> list[Any]:
    return [w.team.pk]


def image_id(w: World) -> list[Any]:
    return [w.image.pk]


def member_target(w: World) -> list[Any]:
    return [w.team.pk, w.target.pk]


CASES: dict[str, Case] = {
    # The current team's pages: each visitor sees their own current team (strangers: their own).
    "generations:create": Case("GET", expected=SIGNED_IN),
    "generations:sizes": Case("GET", expected=SIGNED_IN),
    "generations:gallery": Case("GET", expected=SIGNED_IN),
    # Pricing a job is for those who may spend in their current team: a viewer may not.
    "generations:estimate": Case("GET", expected={**SIGNED_IN, "viewer": FORBIDDEN}),
    "accounts:account": Case("GET", expected=SIGNED_IN),
    "accounts:balance": Case("GET", expected=SIGNED_IN),
    "accounts:password-change": Case("GET", expected=SIGNED_IN),
    "accounts:password-done": Case("GET", expected=SIGNED_IN),
    "teams:create": Case("GET", expected=SIGNED_IN),
    "teams:switch": Case("POST", data=lambda w: {"team": w.team.pk}, expected=EVERY_MEMBER),
    # The team's things.
    "generations:job-card": Case("GET", lambda w: [w.job.pk]),
    "generations:image-detail": Case("GET", image_id),
    "generations:image-download": Case("GET", image_id),
    "generations:media": Case("GET", lambda w: [w.image.image.name]),
    "generations:image-variations": Case("POST", image_id, MAKERS),
    "generations:image-rerun": Case("POST", image_id, MAKERS),
    "generations:image-upscale": Case("POST", image_id, MAKERS),
    # A Stable Image tool's page is the start of a job: only those who may make jobs see it.
    "generations:image-tool": Case("GET", lambda w: [w.image.pk, "outpaint"], MAKERS),
    "generations:image-shares": Case("GET", image_id),
    "generations:share-revoke": Case(
        "POST", lambda w: [w.share.pk], team_scoped(("owner", "admin", "member"))
    ),
    "generations:job-cancel": Case("POST", lambda w: [w.job.pk], MAKERS),
    "generations:job-retry": Case("POST", lambda w: [w.job.pk], MAKERS),
    "teams:settings": Case("GET", team_id),
    "teams:rename": Case("POST", team_id, ADMINS, data=lambda w: {"name": "Renamed"}),
    "teams:member-role": Case("POST", member_target, ADMINS),
    "teams:member-remove": Case("POST", member_target, ADMINS),
    "teams:make-owner": Case("POST", member_target, OWNER),
    "teams:allowance": Case("POST", member_target, ADMINS),
    "teams:leave": Case("POST", team_id),
    "teams:delete": Case("POST", team_id, OWNER),
    "teams:audit": Case("GET", team_id, ADMINS),
    "teams:invite-create": Case("POST", team_id, ADMINS),
    "teams:invite-revoke": Case("POST", lambda w: [w.team.pk, w.invite.pk], ADMINS),
    "teams:key": Case("GET", team_id, ADMINS),
    "teams:key-organization": Case("POST", team_id, ADMINS),
    "teams:key-remove": Case("POST", team_id, OWNER),
    "teams:usage": Case("GET", team_id, ADMINS),
    "teams:usage-csv": Case("GET", team_id, ADMINS),
    # Public by design: an invite and a share link are their own credentials.
    "teams:join": Case("GET", lambda w: [w.invite.token], PUBLIC),
    "generations:share": Case("GET", lambda w: [w.share.token], PUBLIC),
    "generations:share-image": Case("GET", lambda w: [w.share.token], PUBLIC),
}
# Served to anyone by design and about no team: sign-in pages, the sandbox API, the admin, /healthz.
OUT_OF_SCOPE_NAMESPACES = {"sandbox", "admin"}
OUT_OF_SCOPE = {"accounts:signup", "accounts:login", "accounts:logout", "healthz", "favicon"}
# Views of the current team where the upload belongs to it: an upload POST carries a file.
CASES["generations:upload"] = Case("GET", expected=SIGNED_IN)


def collection_id(w: World) -> list[Any]:
    return [Collection.objects.get_or_create(team=w.team, name="Harbour picks")[0].pk]


def selection(w: World) -> dict[str, Any]:
    return {"image": [str(w.image.pk)]}


# The library (issue 10): starring is every member's; collections and trash are for those who make.
CASES.update(
    {
        "generations:image-library": Case("GET", image_id),
        "generations:image-favourite": Case("POST", image_id),
        "generations:library-bulk": Case("POST", data=lambda w: {"action": "star", **selection(w)}),
        "generations:library-download": Case("POST", data=selection),
        "generations:image-collections": Case(
            "POST", image_id, MAKERS, lambda w: {"new_collection": "Picks"}
        ),
        "generations:image-trash": Case("POST", image_id, MAKERS),
        "generations:image-restore": Case("POST", image_id, MAKERS),
        "generations:collection-update": Case("POST", collection_id, MAKERS, lambda w: {"name": "Renamed"}),
        "generations:collection-delete": Case("POST", collection_id, MAKERS),
        "generations:collections": Case("GET", expected=SIGNED_IN),
        "generations:trash": Case("GET", expected=SIGNED_IN),
        "generations:jobs": Case("GET", expected=SIGNED_IN),
        "generations:collection-create": Case(
            "POST", expected={**SIGNED_IN, "viewer": FORBIDDEN}, data=lambda w: {"name": "Picks"}
        ),
    }
)
# Filling the form from a PNG is starting a job in one's current team: a viewer may not.
CASES["generations:fill-from-png"] = Case("POST", expected={**SIGNED_IN, "viewer": FORBIDDEN})


def url_names(patterns: list[Any], namespace: str = "") -> set[str]:
    names: set[str] = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = (
                f"{namespace}:{pattern.namespace}" if namespace and pattern.namespace else pattern.namespace
            )
            names |= url_names(pattern.url_patterns, inner or namespace)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(f"{namespace}:{pattern.name}" if namespace else pattern.name)
    return names


def test_every_url_is_in_the_matrix():
    names = {
        name
        for name in url_names(get_resolver().url_patterns)
        if name.split(":")[0] not in OUT_OF_SCOPE_NAMESPACES and name not in OUT_OF_SCOPE
    }
    assert names - set(CASES) == set(), "add these URLs to the permission matrix"
    assert set(CASES) - names == set(), "these URLs no longer exist"


def outcome(response) -> Any:
    if response.status_code == 302 and "/accounts/login/" in response.get("Location", ""):
        return LOGIN
    if response.status_code in (200, 201, 204, 286, 302, 303, 410):
        return OK
    return response.status_code


@pytest.mark.parametrize("visitor", VISITORS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_permission_matrix(world, name, visitor):
    case = CASES[name]
    url = reverse(name, args=case.args(world)) + case.query
    client = visit(world, visitor)
    response = client.post(url, case.data(world)) if case.method == "POST" else client.get(url)
    assert outcome(response) == case.expected[visitor], f"{case.method} {url} as {visitor}"
    if visitor in ("removed", "outsider", "anonymous") and case.expected is not PUBLIC:
        body = b"".join(response) if response.streaming else response.content
        for secret in (SECRET_PROMPT, str(world.image.pk), world.users["member"].email, world.team.name):
            assert secret.encode() not in body, f"{url} shows {secret!r} to {visitor}"
