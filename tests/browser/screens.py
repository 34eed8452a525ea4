"""Checks that hold on every screen size: nothing scrolls sideways, and a picture of each page is kept."""

import re
from pathlib import Path

from playwright.sync_api import Page

SCREENS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screens"


def page_width(page: Page) -> tuple[int, int]:
    """(the document's scroll width, the viewport's width) in CSS pixels."""
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def assert_fits(page: Page) -> None:
    """The page does not scroll sideways: nothing is wider than the viewport."""
    scroll_width, viewport_width = page_width(page)
    if scroll_width > viewport_width:
        wide = page.evaluate(
            """(limit) => [...document.querySelectorAll("body *")]
                .filter((el) => el.getBoundingClientRect().right > limit + 0.5)
                .slice(0, 8)
                .map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
                    + (typeof el.className === "string" && el.className ? "." + el.className : "")
                    + " right=" + Math.round(el.getBoundingClientRect().right))""",
            viewport_width,
        )
        raise AssertionError(
            f"{page.url} is {scroll_width}px wide in a {viewport_width}px viewport; too wide: {wide}"
        )


def keep_screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of the page under test-artifacts/screens/ and return its path."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:120] + ".png")
    page.screenshot(path=path, full_page=full_page)
    return path
