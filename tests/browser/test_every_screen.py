"""Every page on a phone (390×844) and a laptop (1440×900), in Chromium: nothing scrolls sideways, a picture
of each is kept under test-artifacts/screens/, and axe-core finds no accessibility violation on the pages
and states a person meets most. The phone is in the dark theme and the laptop in the light one.

One live server, one browser and one set of people and images serve the whole module: the pages are
seeded once, each viewport signs each person in once, and the database is emptied when the module ends."""

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test.utils import override_settings, setup_databases, teardown_databases
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from pytest_django.live_server_helper import LiveServer

from tests.browser.a11y import axe_violations, format_violations
from tests.browser.conftest import launch
from tests.browser.screens import assert_fits, keep_screenshot
from tests.images import png

pytestmark = [pytest.mark.browser]

PASSWORD = "a-long-passphrase-42"
PHONE, LAPTOP = (390, 844), (1440, 900)
VIEWPORTS = {"phone": PHONE, "laptop": LAPTOP}
LONG_PROMPT = "a lighthouse on a cliff at dawn, " + "long exposure, soft golden light, " * 14 + "oil painting"


@dataclass
class Seeded:
    """What the module's pages show: where it is served, its files, and the ids the URLs need."""

    base: str
    settings: dict[str, Any]
    ids: dict[str, Any] = field(default_factory=dict)


def _seed(ids: dict[str, Any]) -> None:
    """Ada works in a shared team with Bob and has a full gallery; Eve has just signed up."""
    from accounts.models import Membership
    from accounts.services.invites import invite_create, invite_revoke
    from accounts.services.keys import team_key_set
    from accounts.services.teams import team_create
    from generations.library import collection_add, collection_create, images_trash
    from generations.models import GalleryImage, GenerationJob
    from generations.sharing import share_link_create
    from sandbox.services import key_create
    from tests.factories import UserFactory
    from tests.library_factories import library_image
    from tests.spend_factories import join

    ada = UserFactory(username="ada")  # the first account: the studio's administrator
    UserFactory(username="eve")
    lou = UserFactory(username="lou")  # a team key with little left on it: the header warns
    team_key_set(team=lou.current_team, actor=lou, api_key=key_create(credits=12, email="lou@example.com"))
    team = team_create(user=ada, name="Harbour studio")
    ada.refresh_from_db()
    join(team, role="member", username="bob")
    images = [
        library_image(ada, team, prompt=f"a lighthouse on a cliff, study {n}", seed=n, size=(768, 512))
        for n in range(8)
    ]
    long = library_image(ada, team, prompt=LONG_PROMPT, negative="blurry, low contrast", size=(512, 768))
    filtered = library_image(ada, team, prompt="a storm over the harbour", filtered=True)
    trashed = library_image(ada, team, prompt="a discarded sketch of the pier")
    images_trash(images=GalleryImage.objects.filter(pk=trashed.pk), user=ada)
    collection = collection_create(team=team, user=ada, name="Lighthouses")
    collection_add(
        collection=collection, images=GalleryImage.objects.filter(pk__in=[i.pk for i in images[:3]]), user=ada
    )
    link = share_link_create(image=images[0], user=ada, show_details=True, expires_at=None)
    owner = Membership.objects.get(user=ada, team=team)
    absolute = "http://testserver{}".format
    usable = invite_create(actor=owner, role="member", days=7, single_use=True, absolute_url=absolute)
    gone = invite_create(actor=owner, role="member", days=7, single_use=True, absolute_url=absolute)
    invite_revoke(actor=owner, invite=gone.invite)
    running = GenerationJob.objects.create(
        team=team,
        created_by=ada,
        engine_id="stable-diffusion-xl-1024-v1-0",
        prompt="a harbour at night, lanterns on the water",
        text_prompts=[{"text": "a harbour at night, lanterns on the water", "weight": 1.0}],
        width=1024,
        height=1024,
        samples=2,
        status=GenerationJob.Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=3),
    )
    ids.update(
        team=team.pk,
        image=images[0].pk,
        long=long.pk,
        filtered=filtered.pk,
        job=images[0].job_id,
        running=running.pk,
        share=link.token,
        invite=usable.invite.token,
        invite_gone=gone.invite.token,
    )


@contextlib.contextmanager
def _test_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """The session's test database. pytest-django makes one only when a collected test is marked to use it,
    and these tests are not (a transaction per test would empty or lock what the module seeds)."""
    request.getfixturevalue("django_db_setup")
    if connection.settings_dict["NAME"] == connection.creation._get_test_db_name():
        yield
        return
    made = setup_databases(verbosity=0, interactive=False, aliases={DEFAULT_DB_ALIAS})
    try:
        yield
    finally:
        teardown_databases(made, verbosity=0)


@pytest.fixture(scope="module")
def seeded(request, django_db_blocker, tmp_path_factory) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("every-screen")
    # Playwright's sync API runs an event loop in this thread; the ORM calls here are synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with django_db_blocker.unblock(), _test_database(request):
        server = LiveServer("localhost")
        server._live_server_modified_settings.enable()
        state = Seeded(
            base=server.url,
            settings={
                "MEDIA_ROOT": folder / "media",
                "SANDBOX_KEY_FILE": folder / "sandbox.key",
                "STABILITY_API_HOST": f"{server.url}/sandbox",
                "STABILITY_API_KEY": "",
                "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
            },
        )
        overrides = override_settings(**state.settings)
        overrides.enable()
        try:
            from sandbox.services import key_create

            folder.joinpath("sandbox.key").write_text(key_create(credits=1000, email="studio@example.com"))
            _seed(state.ids)
            yield state
        finally:
            overrides.disable()
            server._live_server_modified_settings.disable()
            server.stop()
            call_command("flush", interactive=False, verbosity=0)
            connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture(autouse=True)
def _module_studio(seeded, settings, django_db_blocker) -> Iterator[None]:
    """The shared fixtures give each test its own media folder and key file; these pages use the module's.
    The live server's thread reaches the database while the test runs."""
    for name, value in seeded.settings.items():
        setattr(settings, name, value)
    with django_db_blocker.unblock():
        yield


# --- the pages -------------------------------------------------------------------------------------------


def choose_init_image(page: Page) -> None:
    page.locator("input[name=init_image]").set_input_files(
        files=[{"name": "harbour.png", "mimeType": "image/png", "buffer": png(640, 448)}]
    )
    settle(page)


def refuse_generate(page: Page) -> None:
    # Spaces pass the browser's `required` check and are refused by the form: the server's errors show.
    page.get_by_label("Prompt", exact=True).fill("   ")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#create-form [role=alert]").first).to_be_visible()


def choose_stable_image_core(page: Page) -> None:
    page.get_by_label("Model", exact=True).select_option("stable-image-core")
    expect(page.get_by_label("Aspect ratio")).to_be_visible()
    settle(page)


def open_lightbox(page: Page) -> None:
    page.locator(".gallery a").first.click()
    expect(page.locator("dialog.lightbox")).to_be_visible()


@dataclass(frozen=True)
class Screen:
    name: str
    # Signed in as ada (a full library), eve (new, nothing yet), bob (a member), lou (few credits) or nobody.
    who: str | None
    url: Callable[[dict[str, Any]], str]
    prepare: Callable[[Page], None] | None = None
    axe: bool = False  # one of the pages and states that must have no accessibility violation


def to(name: str, *keys: str, **kwargs: str) -> Callable[[dict[str, Any]], str]:
    """A URL builder: reverse(name) with the seeded ids named by `keys` as its arguments."""
    return lambda ids: reverse(
        name, kwargs={arg: ids[key] for arg, key in kwargs.items()}, args=[ids[k] for k in keys]
    )


SCREENS = [
    Screen("sign-up", None, to("accounts:signup"), axe=True),
    Screen("sign-in", None, to("accounts:login"), axe=True),
    Screen("create", "eve", to("generations:create"), axe=True),
    Screen("create-init-image", "eve", to("generations:create"), choose_init_image, axe=True),
    Screen("create-errors", "eve", to("generations:create"), refuse_generate, axe=True),
    Screen("create-stable-image", "eve", to("generations:create"), choose_stable_image_core, axe=True),
    Screen("create-generating", "ada", to("generations:create"), axe=True),
    Screen("job", "ada", to("generations:job-card", "job"), axe=True),
    Screen("jobs", "ada", to("generations:jobs")),
    Screen("gallery-empty", "eve", to("generations:gallery"), axe=True),
    Screen("gallery", "ada", to("generations:gallery"), axe=True),
    Screen("lightbox", "ada", to("generations:gallery"), open_lightbox, axe=True),
    Screen("image", "ada", to("generations:image-detail", "image"), axe=True),
    Screen("image-filtered", "ada", to("generations:image-detail", "filtered"), axe=True),
    Screen("image-long-prompt", "ada", to("generations:image-detail", "long"), axe=True),
    Screen(
        "tool-outpaint",
        "ada",
        lambda ids: reverse("generations:image-tool", args=[ids["image"], "outpaint"]),
        axe=True,
    ),
    Screen(
        "tool-inpaint",
        "ada",
        lambda ids: reverse("generations:image-tool", args=[ids["image"], "inpaint"]),
        axe=True,
    ),
    Screen(
        "tool-style-transfer",
        "ada",
        lambda ids: reverse("generations:image-tool", args=[ids["image"], "control-style-transfer"]),
        axe=True,
    ),
    Screen("collections", "ada", to("generations:collections")),
    Screen("trash", "ada", to("generations:trash")),
    Screen("account", "ada", to("accounts:account"), axe=True),
    Screen("password-change", "ada", to("accounts:password-change"), axe=True),
    Screen("low-balance", "lou", to("accounts:account"), axe=True),
    Screen("team-settings", "ada", to("teams:settings", "team")),
    Screen("team-usage", "ada", to("teams:usage", "team")),
    Screen("team-audit", "ada", to("teams:audit", "team")),
    Screen("team-key", "ada", to("teams:key", "team")),
    Screen("team-create", "ada", to("teams:create")),
    Screen("share", None, to("generations:share", "share")),
    Screen("invite-join", None, to("teams:join", "invite")),
    Screen("invite-gone", None, to("teams:join", "invite_gone")),
    Screen("404", "ada", lambda ids: "/no-such-page/", axe=True),
    Screen("403", "bob", to("teams:audit", "team")),
]

# Pages other parts of the studio own, where a check fails today: each entry names what its owner fixes.
# Remove an entry once its page passes (the test then holds that page to it; a strict xfail that passes
# fails the run, so a stale entry cannot hide).
AWAITING_OWNER: dict[str, str] = {}


def params(screens: list[Screen]) -> list[Any]:
    found = []
    for screen in screens:
        for viewport in VIEWPORTS:
            note = AWAITING_OWNER.get(screen.name)
            marks = [pytest.mark.xfail(reason=note, strict=True)] if note else []
            found.append(pytest.param(screen, viewport, id=f"{screen.name}-{viewport}", marks=marks))
    return found


# --- one browser, a signed-in context per person and viewport ----------------------------------------------


@pytest.fixture(scope="module")
def browser(seeded) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def contexts(browser, seeded) -> Iterator[Callable[..., BrowserContext]]:
    """context_for(who, viewport): one signed-in context per person and viewport, shared by the tests;
    fresh=True gives a new one with the same sign-in, for a test that changes what the browser remembers."""
    made: dict[tuple[str | None, str], BrowserContext] = {}
    extra: list[BrowserContext] = []

    def open_context(viewport: str, **options: Any) -> BrowserContext:
        width, height = VIEWPORTS[viewport]
        # The phone in the dark theme, the laptop in the light one: both themes are checked.
        scheme = "dark" if viewport == "phone" else "light"
        context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=scheme, **options
        )
        context.set_default_timeout(15_000)
        return context

    def context_for(who: str | None, viewport: str, *, fresh: bool = False) -> BrowserContext:
        if (who, viewport) not in made:
            context = open_context(viewport)
            if who is not None:
                page = context.new_page()
                page.goto(f"{seeded.base}{reverse('accounts:login')}")
                page.get_by_label("Username").fill(who)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{seeded.base}{reverse('generations:create')}")
                page.close()
            made[(who, viewport)] = context
        if not fresh:
            return made[(who, viewport)]
        extra.append(open_context(viewport, storage_state=made[(who, viewport)].storage_state()))
        return extra[-1]

    yield context_for
    for context in [*made.values(), *extra]:
        context.close()


def settle(page: Page) -> None:
    """Wait for what htmx loads after the page (the header's balance, a job card) to have arrived."""
    # A running job's card keeps polling: no request in flight is enough, never "no more requests".
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(
            """() => window.htmx !== undefined && !document.querySelector(".htmx-request")
                && !(document.querySelector(".balance")?.textContent.includes("…"))""",
            timeout=5_000,
        )


@pytest.fixture
def visit(seeded, contexts) -> Iterator[Callable[[Screen, str], Page]]:
    opened: list[Page] = []

    def open_screen(screen: Screen, viewport: str) -> Page:
        page = contexts(screen.who, viewport).new_page()
        opened.append(page)
        page.console_messages = []  # type: ignore[attr-defined]
        page.on("console", lambda message: page.console_messages.append(message))  # type: ignore[attr-defined]
        page.goto(seeded.base + screen.url(seeded.ids))
        settle(page)
        if screen.prepare is not None:
            screen.prepare(page)
            settle(page)
        return page

    yield open_screen
    for page in opened:
        page.close()


# --- the checks ---------------------------------------------------------------------------------------------

PROBLEMS_IN_CONSOLE = ("htmx", "selector", "content security policy")


@pytest.mark.parametrize(("screen", "viewport"), params(SCREENS))
def test_the_page_fits_the_screen_and_passes_axe(visit, screen: Screen, viewport: str) -> None:
    page = visit(screen, viewport)
    keep_screenshot(page, f"every-{screen.name}-{viewport}")
    assert_fits(page)
    said = [m.text for m in page.console_messages if m.type in ("warning", "error")]  # type: ignore[attr-defined]
    assert not [text for text in said if any(word in text.lower() for word in PROBLEMS_IN_CONSOLE)], said
    if screen.axe:
        violations = axe_violations(page)
        assert not violations, format_violations(violations)


# --- what every page has --------------------------------------------------------------------------------


def open_page(contexts, seeded, who: str | None, viewport: str, path: str, *, fresh: bool = False) -> Page:
    page = contexts(who, viewport, fresh=fresh).new_page()
    page.goto(seeded.base + path)
    settle(page)
    return page


def test_on_a_phone_the_header_folds_into_a_menu_that_the_keyboard_opens_and_closes(contexts, seeded):
    page = open_page(contexts, seeded, "ada", "phone", reverse("accounts:account"))
    gallery = page.get_by_role("link", name="Gallery")
    menu = page.locator("summary.menu-button")
    expect(page.get_by_label("Credit balance")).to_have_text("1000.00 credits")  # visible while folded
    expect(page.get_by_label("Credit balance")).to_be_in_viewport()
    expect(gallery).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")

    menu.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    for name in ("Create", "Gallery", "Team", "Account", "New team"):
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(page.get_by_label("Current team")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert_fits(page)
    keep_screenshot(page, "every-menu-open-phone", full_page=False)

    page.keyboard.press("Escape")
    expect(gallery).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()
    page.close()


def test_on_a_laptop_the_whole_header_shows_without_a_menu_button(contexts, seeded):
    page = open_page(contexts, seeded, "ada", "laptop", reverse("accounts:account"))
    expect(page.get_by_role("link", name="Gallery")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.locator("summary.menu-button")).to_be_hidden()
    page.close()


def test_the_skip_link_comes_first_and_takes_the_keyboard_to_the_page(contexts, seeded):
    page = open_page(contexts, seeded, "ada", "laptop", reverse("accounts:account"))
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")  # the next stop is inside the page, past the header
    assert page.evaluate("document.activeElement.closest('main') !== null")
    page.close()


def test_the_keyboard_focus_shows_as_a_ring_of_at_least_two_pixels(contexts, seeded):
    page = open_page(contexts, seeded, "ada", "laptop", reverse("accounts:account"))
    rings = []
    for _ in range(30):  # the header's links, switcher and buttons, then the page's own, to the end
        page.keyboard.press("Tab")
        ring = page.evaluate(
            """() => { const active = document.activeElement, style = getComputedStyle(active);
                const inHeader = active.closest("header") !== null && !active.matches(".skip-link");
                return [active.outerHTML.slice(0, 60), style.outlineStyle, parseFloat(style.outlineWidth),
                        inHeader ? active.getBoundingClientRect().left : null]; }"""
        )
        if ring[0].startswith("<body"):
            break
        rings.append(ring)
    assert [ring for ring in rings if ring[1] == "none" or ring[2] < 2] == []
    across = [left for *_, left in rings if left is not None]
    assert len(across) >= 8 and across == sorted(across), rings  # the header's order is the one seen
    assert len({ring[0] for ring in rings}) > 10, rings  # the keyboard went through them all
    page.close()


def test_the_theme_follows_the_system_until_the_toggle_chooses_and_remembers(contexts, seeded):
    page = open_page(contexts, seeded, "ada", "laptop", reverse("accounts:account"), fresh=True)
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    toggle = page.get_by_role("button", name="Light theme")
    expect(toggle).to_have_attribute("aria-pressed", "true")  # the system's (emulated) light setting

    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    dark = page.evaluate(background)
    assert dark != light
    page.reload()
    settle(page)
    assert page.evaluate(background) == dark  # remembered, and painted dark from the start
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    page.close()


def test_question_mark_lists_the_keyboard_shortcuts_and_escape_closes_them(contexts, seeded):
    page = open_page(contexts, seeded, "eve", "laptop", reverse("generations:create"))
    shortcuts = page.get_by_role("dialog", name="Keyboard shortcuts")
    page.get_by_label("Prompt", exact=True).press("?")  # typing a question, not asking for help
    expect(shortcuts).to_be_hidden()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("?")

    page.locator("main h1, main h2").first.click()
    page.keyboard.press("?")
    expect(shortcuts).to_be_visible()
    for key in ("Generate", "lightbox", "Show this list"):
        expect(shortcuts).to_contain_text(key)
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    page.keyboard.press("Escape")
    expect(shortcuts).to_be_hidden()
    page.close()


def test_the_sandbox_notice_is_dismissed_once_for_good(contexts, seeded):
    page = open_page(contexts, seeded, "eve", "phone", reverse("accounts:password-change"), fresh=True)
    notice = page.get_by_role("complementary", name="Sandbox engine")
    expect(notice).to_contain_text("procedural previews")
    expect(notice).not_to_contain_text("STABILITY_API_KEY")  # how to change it is for the staff
    notice.get_by_role("button", name="Dismiss").click()
    expect(notice).to_be_hidden()
    page.goto(seeded.base + reverse("generations:gallery"))
    expect(page.get_by_role("heading", level=1).first).to_be_visible()
    expect(page.get_by_text("procedural previews")).to_have_count(0)
    page.close()


def test_content_swapped_in_by_htmx_can_take_the_focus(contexts, seeded):
    page = open_page(contexts, seeded, "eve", "laptop", reverse("accounts:password-change"))
    page.route(
        "**/focus-probe/",
        lambda route: route.fulfill(
            content_type="text/html",
            body='<p>Saved.</p><button data-focus-after-swap type="button">Next</button>',
        ),
    )
    page.evaluate("htmx.ajax('GET', '/focus-probe/', {target: 'main', swap: 'innerHTML'})")
    expect(page.get_by_role("button", name="Next")).to_be_focused()
    page.close()


def test_the_low_balance_warning_fits_a_phone_header(contexts, seeded):
    page = open_page(contexts, seeded, "lou", "phone", reverse("accounts:account"))
    balance = page.get_by_label("Credit balance")
    expect(balance).to_have_text("Low balance: 12.00 credits")
    expect(balance).to_be_in_viewport(ratio=1)
    assert_fits(page)
    page.close()
