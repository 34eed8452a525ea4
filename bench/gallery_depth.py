"""Reads at 100,000 images that must not grow with depth (issue 14): the gallery at page 1 and page 4,000,
a page's 24 thumbnails, and the image page at the newest and at a deep image.

`python -m bench.gallery_depth` seeds a throw-away database as bench/library.py does (BENCH_DATABASE_URL
for PostgreSQL) and prints the table; bench/library.py's `library_rows` adds these rows to its own.
Every figure is measured against a baseline in the same run: a signed-in view that does nothing but
sign the person in and resolve their team (`/bench/signed-in/`, mounted only here), so that the time a
page adds is read apart from what every signed-in request costs on this machine at this moment. Signing
in reads the session from the cache (here the file cache: the benchmark sets no REDIS_URL) and the person
with their current team in one query (accounts/backends.py). The thumbnails are fetched by the signed
links the gallery's tiles carry (generations/media_views.py): no session and no query each.
"""

import io
import os
import re
import statistics
import time
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from bench import standalone

DEEP_PAGE = 4_000
PAGE_SIZE = 24
SIGNED_IN = "/bench/signed-in/"


def signed_in(request: HttpRequest) -> HttpResponse:
    """The baseline: the session, the person and their current team, and nothing else (login_required's
    check, written out: this module is imported before Django is set up)."""
    from django.contrib.auth.views import redirect_to_login

    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return HttpResponse(request.membership.team.name)  # type: ignore[attr-defined]


URLCONF = "bench.gallery_depth"


def __getattr__(name: str) -> Any:
    """This module is the benchmark's URLconf: Studio's URLs, plus the baseline view. (Built when Django
    asks for them: `python -m` runs this module before Django is set up.)"""
    if name == "urlpatterns":
        return [path(SIGNED_IN.strip("/") + "/", signed_in), path("", include("studio.urls"))]
    raise AttributeError(name)


def samples(action: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds of each of `runs` calls."""
    taken = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        taken.append((time.perf_counter() - started) * 1000)
    return taken


def interleaved(actions: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Each action `runs` times, taking turns, so that a burst of load elsewhere falls on all alike."""
    taken: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(runs):
        for name, action in actions.items():
            taken[name].extend(samples(action, 1))
    return taken


def median_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def query_count(action: Callable[[], object]) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        action()
    return len(queries)


def get_ok(client: Any, url: str, **headers: str) -> Any:
    response = client.get(url, **headers)
    assert response.status_code == 200, (url, response.status_code)
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)  # read to the end, as a browser does; this closes it
    return response


def thumbnails_of(html: str) -> list[str]:
    return [unescape(src) for src in re.findall(r'<img src="([^"]+)" alt="[^"]*" loading="lazy"', html)]


def write_thumbnails(team: Any, urls: list[str]) -> None:
    """Real JPEG files for the thumbnails measured (the seeded rows name files that were never written)."""
    from django.conf import settings
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (240, 240), (90, 120, 150)).save(buffer, "JPEG", quality=90)
    prefix = "/media/"
    for url in urls:
        target = Path(settings.MEDIA_ROOT) / url.split(prefix, 1)[1].partition("?")[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(buffer.getvalue())


def depth_rows(team: Any, user: Any, runs: int = 60) -> list[tuple[str, str]]:
    """The gallery, thumbnails and image page at the top and DEEP_PAGE pages down, each as median (p95),
    its queries, and how much it adds to (or how many times it costs) the signed-in baseline."""
    from django.test import Client, override_settings

    from generations.library_search import Cursor
    from generations.models import GalleryImage

    newest = GalleryImage.objects.for_team(team).live().order_by("-created_at", "-id")
    depth = min(DEEP_PAGE * PAGE_SIZE, newest.count() - PAGE_SIZE)
    deep_page = depth // PAGE_SIZE + 1
    # A page as infinite scroll asks for it: the cursor of the image above it.
    top, above_deep = newest[PAGE_SIZE - 1], newest[depth - 1]
    second_cursor = Cursor("newest", top.created_at, top.pk).encode()
    deep_cursor = Cursor("newest", above_deep.created_at, above_deep.pk).encode()
    newest_url, deep_url = newest[0].url, newest[depth].url
    client = Client()
    client.force_login(user)
    htmx = {"HTTP_HX_REQUEST": "true"}
    with override_settings(ROOT_URLCONF=URLCONF):
        first_html = get_ok(client, "/gallery/").content.decode()
        deep_html = get_ok(client, f"/gallery/?before={deep_cursor}", **htmx).content.decode()
        first_thumbs, deep_thumbs = thumbnails_of(first_html), thumbnails_of(deep_html)
        assert len(first_thumbs) == len(deep_thumbs) == PAGE_SIZE, (len(first_thumbs), len(deep_thumbs))
        write_thumbnails(team, first_thumbs + deep_thumbs)

        def thumbnails(urls: list[str]) -> Callable[[], None]:
            def fetch_all() -> None:
                for url in urls:
                    get_ok(client, url)

            return fetch_all

        cases: dict[str, tuple[str, Callable[[], object]]] = {
            "baseline": (
                "A signed-in view that does nothing (the baseline)",
                lambda: get_ok(client, SIGNED_IN),
            ),
            "first": (
                "Gallery, page 2, as infinite scroll asks",
                lambda: get_ok(client, f"/gallery/?before={second_cursor}", **htmx),
            ),
            "deep": (
                f"Gallery, page {deep_page:,} ({depth:,} images down), as infinite scroll asks",
                lambda: get_ok(client, f"/gallery/?before={deep_cursor}", **htmx),
            ),
            "first_thumbs": ("Page 1's 24 thumbnails, one request each", thumbnails(first_thumbs)),
            "deep_thumbs": (f"Page {deep_page:,}'s 24 thumbnails, one request each", thumbnails(deep_thumbs)),
            "image_first": ("Image page, the newest image", lambda: get_ok(client, newest_url)),
            "image_deep": (f"Image page, {depth:,} images down", lambda: get_ok(client, deep_url)),
        }
        for _, action in cases.values():  # warm: imports, template loading, the first connection
            action()
        queries = {name: query_count(action) for name, (_, action) in cases.items()}
        taken = interleaved({name: action for name, (_, action) in cases.items()}, runs)
    baseline, _ = median_p95(taken["baseline"])
    rows = []
    for name, (label, _) in cases.items():
        median, p95 = median_p95(taken[name])
        requests = PAGE_SIZE if name.endswith("thumbs") else 1
        per_request = f", {queries[name] // requests} queries each" if requests > 1 else ""
        relative = (
            ""
            if name == "baseline"
            else f"; {median - baseline * requests:+.1f} ms over {requests} baseline request"
            f"{'s' if requests > 1 else ''} ({median / (baseline * requests):.1f}×)"
        )
        rows.append(
            (
                label,
                f"{median:.1f} ms median, {p95:.1f} ms p95, {queries[name]} queries{per_request}{relative}",
            )
        )
    first, deep = median_p95(taken["first"])[0], median_p95(taken["deep"])[0]
    rows.append((f"Page {deep_page:,} against page 2", f"{deep / first:.2f}× ({deep - first:+.1f} ms)"))
    image_first, image_deep = median_p95(taken["image_first"])[0], median_p95(taken["image_deep"])[0]
    rows.append(
        (
            "Image page, deep against newest",
            f"{image_deep / image_first:.2f}× ({image_deep - image_first:+.1f} ms)",
        )
    )
    return rows


def main() -> None:
    """Standalone: a throw-away database (BENCH_DATABASE_URL, else SQLite) with a 100,000-image team."""
    standalone.setup("depth")
    from bench.library import seed_team

    team, users = seed_team(int(os.environ.get("BENCH_LIBRARY_IMAGES", "100000")))
    standalone.report("bench.gallery_depth", depth_rows(team, users[0]), load=True)


if __name__ == "__main__":
    main()
