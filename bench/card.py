"""The job card's poll against a bare Django view doing the same queries, as a ratio, in the same run.

A running job's card asks every POLL_EVERY whether it changed (generations.job_views.job_card). The bare
views below do exactly the card's database work (the session and user look-ups of a signed-in request,
then the card's own queries) and nothing else: no template, no version check. `bare / card` is the share of
the card's time that is that database work; 100 % would be a card that costs nothing beyond it.

Two cases: the poll of an unchanged card (204), and the poll after a change (the card rendered, 200, which
is what every poll cost before versioned polling); and what one unchanged poll costs, now and as before.
Requests go through Django's test client, in-process, alternating card and bare so that the machine's
noise falls on both. `python -m bench.card` runs it alone.
"""

import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any
from uuid import UUID

from bench import standalone

RUNS = int(os.environ.get("BENCH_CARD_RUNS", "400"))
urlpatterns: list[Any] = []  # filled by card_rows(): Studio's URLs and the bare views


def _card_queries(request: Any, job_id: UUID) -> Any:
    """The card's one query (generations.job_views._card_job), as the bare views make it."""
    from django.db.models import Count, OuterRef, Subquery
    from django.db.models.functions import Coalesce

    from generations.models import GalleryImage, GenerationJob

    live = GalleryImage.objects.filter(job=OuterRef("pk")).live().order_by().values("job")
    count = live.annotate(n=Count("pk")).values("n")
    return (
        GenerationJob.objects.visible_to(request.user)
        .select_related("created_by")
        .annotate(live_images=Coalesce(Subquery(count), 0))
        .get(pk=job_id)
    )


def bare_unchanged(request: Any, job_id: UUID) -> Any:
    from django.http import HttpResponse

    _card_queries(request, job_id)
    return HttpResponse(status=204)


def bare_changed(request: Any, job_id: UUID) -> Any:
    """The changed card's queries (job, images, memberships), and a plain answer."""
    from django.db.models import Prefetch, prefetch_related_objects
    from django.http import HttpResponse

    from generations.models import GalleryImage

    job = _card_queries(request, job_id)
    prefetch_related_objects([job], Prefetch("images", GalleryImage.objects.live().order_by("index")))
    request.membership.can("generate")
    return HttpResponse(" ".join(image.thumbnail_url for image in job.images.all()))


def _alternate(card: Callable[[], Any], bare: Callable[[], Any], runs: int) -> tuple[float, float, float]:
    """Median milliseconds of each, measured in alternation, and the median of each pair's bare / card
    (a pair shares the machine's load of its moment)."""
    card_times: list[float] = []
    bare_times: list[float] = []
    for _ in range(runs):
        for action, times in ((card, card_times), (bare, bare_times)):
            started = time.perf_counter()
            action()
            times.append((time.perf_counter() - started) * 1000)
    ratios = [b / c for c, b in zip(card_times, bare_times, strict=True)]
    return statistics.median(card_times), statistics.median(bare_times), statistics.median(ratios)


def card_rows(runs: int = RUNS) -> list[tuple[str, str]]:
    from django.test import Client, override_settings
    from django.urls import include, path
    from django.utils import timezone

    from accounts.services import user_signup
    from generations.models import GalleryImage, GenerationJob
    from generations.templatetags.job_cards import card_version

    urlpatterns[:] = [
        path("bare/<uuid:job_id>/unchanged/", bare_unchanged),
        path("bare/<uuid:job_id>/changed/", bare_changed),
        path("", include("studio.urls")),
    ]
    user = user_signup(username="cardbench", email="cardbench@example.com", password="bench-passphrase-1")
    now = timezone.now()
    team = user.current_team
    assert team is not None
    job = GenerationJob.objects.create(
        team=team,
        created_by=user,
        engine_id="stable-diffusion-xl-1024-v1-0",
        prompt="a lighthouse",
        text_prompts=[{"text": "a lighthouse", "weight": 1.0}],
        width=1024,
        height=1024,
        samples=4,
        status="running",
        attempts=1,
        started_at=now,
        progress_at=now,
    )
    GalleryImage.objects.bulk_create(
        GalleryImage(
            job=job,
            index=i,
            team=team,
            created_by=user,
            image=f"images/{i}.png",
            thumbnail=f"thumbnails/{i}.jpg",
            width=1024,
            height=1024,
            seed=i + 1,
        )
        for i in range(3)
    )
    job.live_images = 3  # type: ignore[attr-defined]
    version = card_version(job)
    client = Client(headers={"HX-Request": "true"})
    client.force_login(user)
    card_url = f"/jobs/{job.pk}/"
    rows = []
    with override_settings(ROOT_URLCONF=__name__):
        assert client.get(f"{card_url}?v={version}").status_code == 204
        assert client.get(f"{card_url}?v=stale").status_code == 200
        cases = (
            ("unchanged poll (204)", f"{card_url}?v={version}", "unchanged"),
            ("poll after a change (card rendered)", f"{card_url}?v=stale", "changed"),
        )
        for label, url, bare in cases:
            card_ms, bare_ms, ratio = _alternate(
                partial(client.get, url), partial(client.get, f"/bare/{job.pk}/{bare}/"), runs
            )
            rows.append(
                (
                    f"Job card, {label}, vs a bare view doing the same queries",
                    f"{ratio:.0%} ({card_ms:.2f} ms vs {bare_ms:.2f} ms median)",
                )
            )
        # Before versioned polling every poll rendered the card, changed or not.
        new_ms, old_ms, _ = _alternate(
            lambda: client.get(f"{card_url}?v={version}"), lambda: client.get(card_url), runs
        )
        rows.append(
            (
                "Job card, one poll of an unchanged running card",
                f"{new_ms:.2f} ms median (was {old_ms:.2f} ms when every poll rendered the card)",
            )
        )
    return rows


def main() -> None:
    standalone.setup("card", static=False)
    standalone.report("bench.card", card_rows())


if __name__ == "__main__":
    main()
