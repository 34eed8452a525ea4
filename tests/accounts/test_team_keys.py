"""A team's own Stability key: checked with the (sandbox) API before it is saved, encrypted at rest,
billed to an organization of its own, rotated to new key material, and never shown, logged or admin-edited."""

import io
import logging
import os
import secrets
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import pytest
import respx
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils.log import AdminEmailHandler

from accounts import crypto
from accounts.models import AuditEvent, Membership, Team
from accounts.policy import Role
from accounts.services import keys as key_services
from accounts.services import team_balance
from accounts.services.teams import team_create
from generations import services as generation_services
from generations.stability.contract import Prompt, price_per_image
from generations.stability.types import TextToImageRequest
from sandbox.models import ApiKey, OrganizationMembership
from sandbox.models import Organization as SandboxOrganization
from tests.conftest import ROOT
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


# --- helpers ---------------------------------------------------------------------------------------


def shows_key(text: str, key: str) -> bool:
    """Whether any ten characters in a row of the key's secret part appear in `text` (the masked hint
    shows only `sk-` and the last four)."""
    secret = key[3:-4]
    return any(secret[i : i + 10] in text for i in range(len(secret) - 9))


def shared_team(**roles: Role) -> tuple[Team, dict]:
    """A team owned by `owner`, with a user for each other role given: shared_team(admin=Role.ADMIN)."""
    owner = UserFactory()
    team = team_create(user=owner, name="Poster studio")
    people = {"owner": owner}
    for name, role in roles.items():
        person = UserFactory()
        Membership.objects.create(user=person, team=team, role=role)
        people[name] = person
    return team, people


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def default_org(key: str) -> SandboxOrganization:
    account = ApiKey.objects.get(key=key).account
    return account.memberships.get(is_default=True).organization


def org_add(key: str, *, name: str, credits: float) -> SandboxOrganization:
    """Another organization on the key's Stability account, as a person in two organizations has."""
    org = SandboxOrganization.objects.create(
        id=f"org-{secrets.token_hex(6)}", name=name, credits=Decimal(str(credits))
    )
    OrganizationMembership.objects.create(
        account=ApiKey.objects.get(key=key).account, organization=org, role="MEMBER", is_default=False
    )
    return org


def credits(org: SandboxOrganization) -> Decimal:
    org.refresh_from_db()
    return org.credits


def raw_key_columns(team: Team) -> tuple[str, str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT stability_api_key_encrypted, stability_api_key_hint, stability_organization "
            "FROM accounts_team WHERE id = %s",
            [team.pk],
        )
        return cursor.fetchone()


def text_to_image(samples: int = 1) -> TextToImageRequest:
    return TextToImageRequest(text_prompts=(Prompt("a lighthouse"),), width=512, height=512, samples=samples)


# --- setting the key -------------------------------------------------------------------------------


def test_a_valid_key_is_stored_encrypted_and_shown_only_masked(studio_engine, make_sandbox_key):
    team, people = shared_team()
    key = make_sandbox_key(credits=50, email="posters@example.com")
    client = client_for(people["owner"])

    response = client.post(reverse("teams:key", args=[team.pk]), {"api_key": key})

    assert response.status_code == 302
    encrypted, hint, organization = raw_key_columns(team)
    assert encrypted and key not in encrypted and not shows_key(encrypted, key)
    assert hint == f"sk-…{key[-4:]}"
    assert organization == default_org(key).id
    team.refresh_from_db()
    assert team.stability_api_key == key
    page = client.get(reverse("teams:key", args=[team.pk])).content.decode()
    assert f"sk-…{key[-4:]}" in page and "uses its own key" in page
    assert not shows_key(page, key)
    event = AuditEvent.objects.get(team=team, action__startswith="key.")
    assert event.action == "key.set" and event.actor == people["owner"]


def test_a_wrong_key_shows_the_apis_message_at_the_field_and_stores_nothing(studio_engine):
    team, people = shared_team()
    wrong = "sk-" + secrets.token_urlsafe(36)

    response = client_for(people["owner"]).post(reverse("teams:key", args=[team.pk]), {"api_key": wrong})

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_api_key_error"' in page
    assert "The Stability API refused this key: Incorrect API key provided." in page
    assert not shows_key(page, wrong)
    assert raw_key_columns(team) == ("", "", "")
    assert not AuditEvent.objects.filter(team=team, action__startswith="key.").exists()


def test_an_api_message_that_quotes_the_key_is_shown_with_the_key_masked(settings, db):
    """Some APIs quote the refused key in their message; the sandbox does not, so this one is injected."""
    settings.STABILITY_API_HOST = "https://api.stability.test"
    team, people = shared_team()
    key = "sk-" + secrets.token_urlsafe(36)
    with respx.mock:
        respx.get("https://api.stability.test/v1/user/account").mock(
            return_value=httpx.Response(
                401,
                json={"id": "e1", "name": "unauthorized", "message": f"Incorrect API key provided: {key}"},
            )
        )
        response = client_for(people["owner"]).post(reverse("teams:key", args=[team.pk]), {"api_key": key})

    page = response.content.decode()
    assert f"Incorrect API key provided: sk-…{key[-4:]}" in page
    assert not shows_key(page, key)
    assert raw_key_columns(team) == ("", "", "")


def test_an_unreachable_api_saves_nothing_and_says_so(settings, db):
    settings.STABILITY_API_HOST = "http://127.0.0.1:9"  # the discard port: connection refused
    team, people = shared_team()

    response = client_for(people["owner"]).post(
        reverse("teams:key", args=[team.pk]), {"api_key": "sk-" + secrets.token_urlsafe(36)}
    )

    assert "could not be checked right now, so it was not saved" in response.content.decode()
    assert raw_key_columns(team) == ("", "", "")


def test_an_empty_or_broken_key_is_refused_before_asking_the_api(studio_engine):
    team, people = shared_team()
    client = client_for(people["owner"])
    url = reverse("teams:key", args=[team.pk])

    assert "Enter the team&#x27;s Stability API key." in client.post(url, {"api_key": "  "}).content.decode()
    assert "no spaces or line breaks" in client.post(url, {"api_key": "sk-abc def"}).content.decode()
    assert raw_key_columns(team) == ("", "", "")


def test_the_organization_select_lists_the_keys_organizations_and_refuses_another(
    studio_engine, make_sandbox_key
):
    team, people = shared_team()
    key = make_sandbox_key(credits=50, email="posters@example.com")
    print_shop = org_add(key, name="Print shop", credits=30)
    stranger = default_org(make_sandbox_key(credits=10, email="someone-else@example.com"))
    client = client_for(people["owner"])
    client.post(reverse("teams:key", args=[team.pk]), {"api_key": key})

    page = client.get(reverse("teams:key", args=[team.pk])).content.decode()
    assert f'<option value="{default_org(key).id}" selected>' in page
    assert f'<option value="{print_shop.id}">Print shop ({print_shop.id})</option>' in page
    assert stranger.id not in page

    url = reverse("teams:key-organization", args=[team.pk])
    refused = client.post(url, {"organization": stranger.id}).content.decode()
    assert f"{stranger.id} is not one of this key&#x27;s organizations." in refused
    assert raw_key_columns(team)[2] == default_org(key).id

    assert client.post(url, {"organization": print_shop.id}).status_code == 302
    assert raw_key_columns(team)[2] == print_shop.id
    assert AuditEvent.objects.filter(team=team, action="key.changed").exists()


def test_setting_a_key_with_an_organization_not_on_it_stores_nothing(studio_engine, make_sandbox_key):
    team, people = shared_team()
    key = make_sandbox_key(credits=50, email="posters@example.com")
    stranger = default_org(make_sandbox_key(credits=10, email="someone-else@example.com"))

    with pytest.raises(key_services.TeamKeyRefused) as refusal:
        key_services.team_key_set(team=team, actor=people["owner"], api_key=key, organization=stranger.id)

    assert refusal.value.field == "organization"
    assert raw_key_columns(team) == ("", "", "")


# --- what the key is used for ---------------------------------------------------------------------


def test_a_job_of_the_team_is_charged_to_the_organization_its_key_bills(studio_engine, make_sandbox_key):
    team, people = shared_team()
    key = make_sandbox_key(credits=50, email="posters@example.com")
    print_shop = org_add(key, name="Print shop", credits=30)
    key_services.team_key_set(team=team, actor=people["owner"], api_key=key, organization=print_shop.id)
    studio_org, keys_default = default_org(studio_engine), default_org(key)
    studio_before, default_before = credits(studio_org), credits(keys_default)

    job = generation_services.job_create(
        team=team, user=people["owner"], engine_id="stable-diffusion-v1-6", request=text_to_image(2)
    )

    job.refresh_from_db()
    price = price_per_image("stable-diffusion-v1-6", steps=30, width=512, height=512)
    assert job.status == "succeeded"
    assert credits(print_shop) == Decimal(30) - 2 * price
    assert credits(keys_default) == default_before
    assert credits(studio_org) == studio_before
    assert team_balance(team).credits == pytest.approx(float(Decimal(30) - 2 * price))


def test_teams_see_their_own_balance_and_a_new_key_is_not_served_from_the_cache(
    studio_engine, make_sandbox_key
):
    team, people = shared_team()
    personal = Team.objects.get(memberships__user=people["owner"], is_personal=True)
    studio_credits = team_balance(personal).credits
    assert team_balance(team).credits == studio_credits  # cached under the studio key

    key = make_sandbox_key(credits=50, email="posters@example.com")
    key_services.team_key_set(team=team, actor=people["owner"], api_key=key)
    assert team_balance(team).credits == 50
    assert team_balance(personal).credits == studio_credits

    SandboxOrganization.objects.filter(pk=default_org(key).pk).update(credits=Decimal(45))
    assert team_balance(team).credits == 50  # cached
    key_services.team_key_set(team=team, actor=people["owner"], api_key=key)  # set again: forgets the cache
    assert team_balance(team).credits == 45

    key_services.team_key_remove(team=team, actor=people["owner"])
    assert team_balance(team).credits == studio_credits
    assert raw_key_columns(team) == ("", "", "")


def test_replacing_then_removing_the_key_is_recorded_in_the_audit_log(studio_engine, make_sandbox_key):
    team, people = shared_team(admin=Role.ADMIN)
    first, second = make_sandbox_key(credits=5, email="a@example.com"), make_sandbox_key(credits=5)
    client_for(people["admin"]).post(reverse("teams:key", args=[team.pk]), {"api_key": first})
    client_for(people["admin"]).post(reverse("teams:key", args=[team.pk]), {"api_key": second})
    client_for(people["owner"]).post(reverse("teams:key-remove", args=[team.pk]))

    events = list(AuditEvent.objects.filter(team=team, action__startswith="key.").order_by("created_at"))
    assert [e.action for e in events] == ["key.set", "key.changed", "key.removed"]
    assert f"…{second[-4:]}" in events[1].summary
    assert not any(shows_key(e.summary, first) or shows_key(e.summary, second) for e in events)


# --- rotation and the local key file ----------------------------------------------------------------


def test_rotation_reencrypts_every_key_so_the_old_key_material_can_be_dropped(settings, db):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.STUDIO_FERNET_KEYS = [old]
    team, _ = shared_team()
    key = "sk-" + secrets.token_urlsafe(36)
    team.set_stability_api_key(key)
    team.save()
    sealed_with_old = raw_key_columns(team)[0]

    settings.STUDIO_FERNET_KEYS = [new, old]
    output = io.StringIO()
    call_command("rotate_team_keys", stdout=output)

    assert "Re-encrypted 1 team key with the newest Fernet key." in output.getvalue()
    assert raw_key_columns(team)[0] != sealed_with_old
    settings.STUDIO_FERNET_KEYS = [new]
    assert Team.objects.get(pk=team.pk).stability_api_key == key
    settings.STUDIO_FERNET_KEYS = [old]
    with pytest.raises(InvalidToken):
        Team.objects.get(pk=team.pk).stability_api_key  # noqa: B018


def test_rotation_reports_a_key_no_configured_material_opens(settings, db):
    lost = Fernet.generate_key().decode()
    settings.STUDIO_FERNET_KEYS = [lost]
    team, _ = shared_team()
    team.set_stability_api_key("sk-" + secrets.token_urlsafe(36))
    team.save()
    settings.STUDIO_FERNET_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(CommandError, match=f"team ids: {team.pk}"):
        call_command("rotate_team_keys", stdout=io.StringIO())

    assert "cannot be decrypted" in team_balance(team).problem  # not the studio's key in its place
    owner = client_for(team.memberships.get(role=Role.OWNER).user)
    assert "cannot be decrypted" in owner.get(reverse("teams:key", args=[team.pk])).content.decode()
    assert owner.post(reverse("teams:key-remove", args=[team.pk])).status_code == 302
    assert raw_key_columns(team) == ("", "", "")


# A process as `make run` starts them (gunicorn workers, Celery processes), asking for the local key at the
# same moment as its siblings, once per round, each round in a fresh folder.
RACER = """
import os, pathlib, django
django.setup()
from django.conf import settings
from accounts import crypto
folder = pathlib.Path(os.environ["RACE_FOLDER"])
for round in range(int(os.environ["RACE_ROUNDS"])):
    (folder / f"ready-{round}-{os.getpid()}").touch()
    while not (folder / f"go-{round}").exists():
        pass
    settings.VAR_DIR = folder / f"var-{round}"
    print(round, crypto._local_key(), flush=True)
"""


def test_processes_racing_to_create_the_local_key_file_all_get_the_whole_same_key(tmp_path):
    """Creating the file and then writing it let a sibling read it empty in about one race in eight."""
    racers, rounds = 3, 100
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STUDIO_VAR_DIR": str(tmp_path / "studio"),
        "STUDIO_FERNET_KEYS": "",
        "RACE_FOLDER": str(tmp_path),
        "RACE_ROUNDS": str(rounds),
    }
    env.pop("PYTEST_VERSION", None)
    processes = [
        subprocess.Popen([sys.executable, "-c", RACER], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(racers)
    ]
    for round in range(rounds):
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob(f"ready-{round}-*"))) < racers and time.monotonic() < deadline:
            time.sleep(0.0005)
        (tmp_path / f"go-{round}").touch()
    keys: dict[str, set[str]] = {}
    for process in processes:
        for line in process.communicate(timeout=120)[0].splitlines():
            round_, key = line.split(" ")
            keys.setdefault(round_, set()).add(key)

    assert len(keys) == rounds
    for round_, seen in keys.items():
        assert seen == {(tmp_path / f"var-{round_}" / "fernet.key").read_text()}, round_
    (key,) = keys["0"]
    Fernet(key.encode())  # a whole key
    assert (tmp_path / "var-0" / "fernet.key").stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob("var-*/.fernet-*"))  # no temporary file left behind


def test_a_malformed_fernet_key_is_named_without_being_repeated(settings):
    settings.STUDIO_FERNET_KEYS = ["not-a-fernet-key-at-all"]
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="Key 1 of STUDIO_FERNET_KEYS") as problem:
        crypto.encrypt("sk-anything")
    assert "not-a-fernet-key-at-all" not in str(problem.value)


# --- never shown, logged or in the admin ------------------------------------------------------------


def test_the_key_never_appears_in_a_response_or_a_log(studio_engine, make_sandbox_key, caplog):
    caplog.set_level(logging.DEBUG)
    team, people = shared_team()
    key = make_sandbox_key(credits=50, email="posters@example.com")
    wrong = "sk-" + secrets.token_urlsafe(36)
    client = client_for(people["owner"])
    url = reverse("teams:key", args=[team.pk])
    bodies = [client.get(url), client.post(url, {"api_key": wrong})]
    bodies += [client.post(url, {"api_key": key}, follow=True), client.get(url)]
    bodies += [client.get(reverse("accounts:balance")), client.get(reverse("accounts:account"))]
    generation_services.job_create(
        team=team, user=people["owner"], engine_id="stable-diffusion-v1-6", request=text_to_image()
    )
    bodies.append(client.post(url, {"api_key": key + "x"}))  # a wrong key that contains the real one

    assert "HTTP Request: GET" in caplog.text  # the client's requests were logged, at DEBUG even
    for response in bodies:
        body = response.content.decode()
        assert not shows_key(body, key) and not shows_key(body, wrong), response.request["PATH_INFO"]
    assert not shows_key(caplog.text, key) and not shows_key(caplog.text, wrong)


def test_djangos_error_report_hides_the_key_posted_to_a_failing_save(
    studio_engine, make_sandbox_key, settings, monkeypatch, mailoutbox
):
    """A crash while saving (here: the audit log refuses the write) is mailed to the admins, as Django
    reports errors in production (its default `mail_admins` handler, text only; plus an HTML report, which
    lists every frame's variables); the key is in neither."""
    settings.ADMINS = ["ops@example.com"]
    with_variables = AdminEmailHandler(include_html=True)
    logging.getLogger("django.request").addHandler(with_variables)
    team, people = shared_team()
    key = make_sandbox_key(credits=50, email="posters@example.com")

    def audit_fails(**kwargs: object) -> None:
        raise RuntimeError("the audit log is unavailable")

    monkeypatch.setattr(key_services, "audit_record", audit_fails)
    client = client_for(people["owner"])
    client.raise_request_exception = False
    try:
        response = client.post(reverse("teams:key", args=[team.pk]), {"api_key": key})
    finally:
        logging.getLogger("django.request").removeHandler(with_variables)

    assert response.status_code == 500 and not shows_key(response.content.decode(), key)
    assert len(mailoutbox) == 2
    html = next(alternative.content for m in mailoutbox for alternative in m.alternatives)
    assert "the audit log is unavailable" in html and "team_key_set" in html and "Local Vars" in html
    assert "api_key" in html and "********" in html
    for report in [html, *(m.body for m in mailoutbox)]:
        assert "the audit log is unavailable" in report and not shows_key(report, key)
    assert raw_key_columns(team) == ("", "", "")  # the transaction rolled back


def test_the_admin_shows_the_hint_but_never_the_key_or_its_ciphertext(studio_engine, make_sandbox_key):
    from accounts.models import User

    team, people = shared_team()
    key = make_sandbox_key(credits=50, email="posters@example.com")
    key_services.team_key_set(team=team, actor=people["owner"], api_key=key)
    encrypted = raw_key_columns(team)[0]
    admin = User.objects.create_superuser(username="root", email="root@example.com", password="x" * 20)
    client = client_for(admin)

    change = client.get(reverse("admin:accounts_team_change", args=[team.pk])).content.decode()
    changelist = client.get(reverse("admin:accounts_team_changelist")).content.decode()

    assert f"sk-…{key[-4:]}" in change and f"sk-…{key[-4:]}" in changelist
    assert 'name="stability_api_key' not in change and 'name="stability_organization"' not in change
    for page in (change, changelist):
        assert not shows_key(page, key) and encrypted[:40] not in page


# --- who may do what ---------------------------------------------------------------------------------


def test_members_and_viewers_are_refused_and_strangers_see_nothing(studio_engine, make_sandbox_key):
    team, people = shared_team(member=Role.MEMBER, viewer=Role.VIEWER)
    key = make_sandbox_key(credits=50, email="posters@example.com")
    key_services.team_key_set(team=team, actor=people["owner"], api_key=key)
    stranger = UserFactory()
    urls = [
        ("get", reverse("teams:key", args=[team.pk]), {}),
        ("post", reverse("teams:key", args=[team.pk]), {"api_key": key}),
        ("post", reverse("teams:key-organization", args=[team.pk]), {"organization": "org-x"}),
        ("post", reverse("teams:key-remove", args=[team.pk]), {}),
    ]
    for user, expected in ((people["member"], 403), (people["viewer"], 403), (stranger, 404)):
        client = client_for(user)
        for method, url, data in urls:
            response = getattr(client, method)(url, data)
            assert response.status_code == expected, (user.username, method, url)
            assert not shows_key(response.content.decode(), key)
    assert Team.objects.get(pk=team.pk).stability_api_key == key
    assert AuditEvent.objects.filter(team=team, action__startswith="key.").count() == 1


def test_an_admin_may_set_the_key_but_only_an_owner_may_remove_it(studio_engine, make_sandbox_key):
    team, people = shared_team(admin=Role.ADMIN)
    key = make_sandbox_key(credits=50, email="posters@example.com")
    admin, owner = client_for(people["admin"]), client_for(people["owner"])

    assert admin.post(reverse("teams:key", args=[team.pk]), {"api_key": key}).status_code == 302
    assert "Only an owner can remove" in admin.get(reverse("teams:key", args=[team.pk])).content.decode()
    refused = admin.post(reverse("teams:key-remove", args=[team.pk]))
    assert refused.status_code == 403
    assert Team.objects.get(pk=team.pk).has_own_key

    assert owner.post(reverse("teams:key-remove", args=[team.pk])).status_code == 302
    assert not Team.objects.get(pk=team.pk).has_own_key
    assert "uses the studio-wide key" in owner.get(reverse("teams:key", args=[team.pk])).content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(client, db):
    team, _ = shared_team()
    response = client.get(reverse("teams:key", args=[team.pk]))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]
