"""The library at scale: a team with 100,000 images, seeded in bulk, and what browsing it costs.

`python -m bench.library` runs it alone (BENCH_DATABASE_URL=postgres://... for PostgreSQL, where the
figures of issue 10 are promised) and writes docs/library.md; bench/__main__.py calls `library_rows`.
Every figure is the server's own time through Django's test client: median and p95 of repeated requests,
and the number of queries one request makes (signing in included: the user with their current team; the
session comes from the cache).
"""

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import standalone

ROOT = Path(__file__).resolve().parent.parent
SEARCH_WORD = "lighthouse"  # in about 1 prompt in 100
COMMON_WORD = "forest"  # in about 1 prompt in 8
SUBJECTS = [
    "a fox",
    "an old robot",
    "a castle",
    "a sailing ship",
    "a cat",
    "a dragon",
    "a city street",
    "a mountain lake",
    "a portrait of a woman",
    "a tea house",
    "a desert caravan",
    "a space station",
    "a bowl of fruit",
    "an owl",
    "a cathedral",
    "a vintage car",
]
PLACES = ["at dawn", "in the rain", "at night", "under snow", "in autumn", "by the sea", "in fog", "at noon"]
STYLES = [
    "oil painting",
    "watercolor",
    "photograph",
    "ink drawing",
    "3d render",
    "pastel sketch",
    "concept art",
    "woodcut",
]
FILLER = [
    "detailed",
    "soft light",
    "golden hour",
    "wide angle",
    "bokeh",
    "muted colors",
    "vivid colors",
    "high contrast",
    "cinematic lighting",
    "minimalist",
    "ornate",
    "symmetrical",
]
ENGINES = [
    ("stable-diffusion-xl-1024-v1-0", 0.55, (1024, 1024)),
    ("stable-diffusion-v1-6", 0.25, (512, 512)),
    ("stable-diffusion-512-v2-1", 0.12, (512, 512)),
    ("stable-diffusion-768-v2-1", 0.08, (768, 768)),
]
SIZES = {
    1024: [(1024, 1024), (1152, 896), (896, 1152), (1344, 768), (768, 1344)],
    512: [(512, 512), (640, 448), (448, 640)],
    768: [(768, 768), (1024, 576), (576, 1024)],
}
KINDS = [
    ("text-to-image", "", 0.70),
    ("image-to-image", "init", 0.08),
    ("image-to-image", "variation", 0.10),
    ("masking", "", 0.04),
    ("upscale", "upscale", 0.03),
    ("text-to-image", "rerun", 0.05),
]
STYLE_PRESETS = ["", "", "", "photographic", "anime", "cinematic", "digital-art", "fantasy-art", "pixel-art"]


def _prompt(rng: random.Random) -> str:
    words = [rng.choice(SUBJECTS), rng.choice(PLACES), rng.choice(STYLES), *rng.sample(FILLER, 3)]
    if rng.random() < 0.01:
        words.insert(1, f"beside a {SEARCH_WORD}")
    if rng.random() < 0.125:
        words.insert(1, f"in a {COMMON_WORD}")
    return ", ".join(words)


def seed_library(team: Any, users: list[Any], count: int, *, images_per_job: int = 4, seed: int = 10) -> None:
    """`count` images for `team`, made by `users` over a year, in jobs of `images_per_job`: bulk inserts,
    a few seconds for 100,000 rows. Files are not written (the pages only link to them)."""
    from django.utils import timezone

    from generations.models import (
        GalleryImage,
        GalleryTally,
        GenerationJob,
        image_kind,
        image_path,
        thumbnail_path,
    )

    rng = random.Random(seed)
    now = timezone.now()
    spacing = timedelta(days=365) / count
    jobs: list[GenerationJob] = []
    images: list[GalleryImage] = []
    for number in range(0, count, images_per_job):
        engine_id, size_class = _pick_engine(rng)
        width, height = rng.choice(SIZES[size_class])
        kind, relation = _pick_kind(rng)
        prompt = _prompt(rng)
        negative = "blurry, low quality" if rng.random() < 0.4 else ""
        created_at = now - spacing * number
        job = GenerationJob(
            team=team,
            created_by=rng.choice(users),
            kind=kind,
            relation=relation,
            engine_id=engine_id,
            prompt=prompt,
            negative_prompt=negative,
            text_prompts=[{"text": prompt, "weight": 1.0}]
            + ([{"text": negative, "weight": -1.0}] if negative else []),
            width=width,
            height=height,
            samples=images_per_job,
            style_preset=rng.choice(STYLE_PRESETS),
            init_image="inputs/bench.png" if kind != "text-to-image" else "",
            mask_source="INIT_IMAGE_ALPHA" if kind == "masking" else "",
            upscale_factor=2 if kind == "upscale" else None,
            status="succeeded",
            created_at=created_at,
            finished_at=created_at,
        )
        jobs.append(job)
        for index in range(min(images_per_job, count - number)):
            image = GalleryImage(
                job=job,
                index=index,
                team=team,
                created_by=job.created_by,
                image="",
                thumbnail="",
                width=width,
                height=height,
                seed=rng.randrange(1, 2**32),
                finish_reason="CONTENT_FILTERED" if rng.random() < 0.02 else "SUCCESS",
                created_at=created_at - timedelta(microseconds=index),
            )
            # The names Studio gives stored files (generations.models.image_path and thumbnail_path).
            image.image.name = image_path(image, "")
            image.thumbnail.name = thumbnail_path(image, "")
            image.copy_job_facts(job)
            assert image.kind == image_kind(job)
            images.append(image)
    GenerationJob.objects.bulk_create(jobs, batch_size=2000)
    GalleryImage.objects.bulk_create(images, batch_size=2000)
    GalleryTally.objects.rebuild(team.pk)  # bulk inserts skip GalleryImage.save, which keeps the tally


def _pick_engine(rng: random.Random) -> tuple[str, int]:
    roll, total = rng.random(), 0.0
    for engine_id, share, size in ENGINES:
        total += share
        if roll < total:
            return engine_id, size[0]
    return ENGINES[0][0], ENGINES[0][2][0]


def _pick_kind(rng: random.Random) -> tuple[str, str]:
    roll, total = rng.random(), 0.0
    for kind, relation, share in KINDS:
        total += share
        if roll < total:
            return kind, relation
    return KINDS[0][0], KINDS[0][1]


def seed_extras(
    team: Any, user: Any, *, favourites: int = 1000, collections: int = 10, per_collection: int = 500
) -> None:
    """Stars and collections, as a team that has used the library for a while has them."""
    from generations import library
    from generations.models import GalleryImage

    images = GalleryImage.objects.for_team(team)
    ids = list(images.values_list("pk", flat=True))
    rng = random.Random(11)
    library.favourites_add(user=user, images=images.filter(pk__in=rng.sample(ids, favourites)))
    for number in range(collections):
        collection = library.collection_create(team=team, user=user, name=f"Collection {number + 1}")
        chosen = images.filter(pk__in=rng.sample(ids, per_collection))
        library.collection_add(collection=collection, images=chosen, user=user)


def cursor_at(team: Any, depth: int) -> str:
    """The `before` cursor that shows the page starting `depth` images down the newest-first gallery."""
    from generations.library_search import Cursor
    from generations.models import GalleryImage

    image = GalleryImage.objects.for_team(team).live().order_by("-created_at", "-id")[depth - 1]
    return Cursor("newest", image.created_at, image.pk).encode()


ZIP_PEAK = """
import sys, django
django.setup()
from django.test import Client
from accounts.models import User
from generations.models import GalleryImage


def status(name):
    line = next(line for line in open("/proc/self/status") if line.startswith(name + ":"))
    return int(line.split()[1]) / 1024  # MiB


user = User.objects.get(username=sys.argv[1])
chosen = GalleryImage.objects.filter(image__startswith="bench-zip/").values_list("pk", flat=True)
ids = [str(pk) for pk in chosen[: int(sys.argv[2])]]
client = Client()
client.force_login(user)
client.get("/gallery/")  # warm: imports and the first queries are not the download's
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from here
response = client.post("/library/download/", {"image": ids})
size = sum(len(piece) for piece in response.streaming_content)
print(size, status("VmHWM") - before, status("VmHWM"))
"""


def zip_rows(team: Any, user: Any) -> list[tuple[str, str]]:
    """Peak resident memory of streaming a ZIP of 50 and of 500 real PNGs (about 0.8 MB each), each in a fresh
    process, so the growth is the download's own."""
    import io

    import numpy as np
    from django.conf import settings
    from PIL import Image

    from generations.models import GalleryImage

    noise = np.random.default_rng(5).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    folder = Path(settings.MEDIA_ROOT) / "bench-zip"
    folder.mkdir(parents=True, exist_ok=True)
    ids = list(GalleryImage.objects.for_team(team).live().order_by("-created_at")[:500])
    for image in ids:
        name = f"bench-zip/{image.pk}.png"
        (Path(settings.MEDIA_ROOT) / name).write_bytes(buffer.getvalue())
        image.image.name = name
    GalleryImage.objects.bulk_update(ids, ["image"])
    rows = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for count in (50, 500):
        out = subprocess.run(
            [sys.executable, "-c", ZIP_PEAK, user.username, str(count)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        size, grown, peak = int(out[-3]), float(out[-2]), float(out[-1])
        rows.append(
            (
                f"ZIP of {count} images ({size / 2**20:,.0f} MiB), streamed",
                f"{grown:.1f} MiB peak memory growth (peak {peak:.0f} MiB)",
            )
        )
    return rows


def seed_team(count: int) -> tuple[Any, list[Any]]:
    """A team of five (the lead first) with `count` images, 1,000 of the lead's stars and 10 collections."""
    from django.db import connection

    from accounts.models import Membership
    from accounts.services import user_signup

    users = [
        user_signup(username=f"lib-{name}", email=f"lib-{name}@example.com", password="bench-passphrase-1")
        for name in ("lead", "ana", "bo", "cy", "di")
    ]
    team = users[0].current_team
    assert team is not None
    for user in users[1:]:
        Membership.objects.create(team=team, user=user, role="member")
    seed_library(team, users, count)
    seed_extras(team, users[0])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # what autovacuum does for a table that grew: fresh statistics
            cursor.execute("VACUUM ANALYZE")
    return team, users


def page_cases(team: Any, users: list[Any]) -> list[tuple[str, str, dict[str, str]]]:
    """The gallery requests measured: (label, URL, headers)."""
    deep = live_count(team) // 2
    return [
        ("First gallery page", "/gallery/", {}),
        (
            f"A deep page ({deep:,} images down), as infinite scroll asks",
            f"/gallery/?before={cursor_at(team, deep)}",
            {"HTTP_HX_REQUEST": "true"},
        ),
        (
            f"A deep page ({deep:,} images down), whole page with counts",
            f"/gallery/?before={cursor_at(team, deep)}",
            {},
        ),
        (
            f"Text search, “{SEARCH_WORD}” (1 prompt in 100), best match first",
            f"/gallery/?q={SEARCH_WORD}",
            {},
        ),
        (f"Text search, “{COMMON_WORD}” (1 prompt in 8), best match first", f"/gallery/?q={COMMON_WORD}", {}),
        (f"Text search, “{COMMON_WORD}”, newest first", f"/gallery/?q={COMMON_WORD}&sort=newest", {}),
        (
            "Two filters: creator and engine",
            f"/gallery/?creator={users[1].pk}&engine=stable-diffusion-v1-6",
            {},
        ),
        ("Two filters: style and kind", "/gallery/?style=anime&kind=variation", {}),
        ("A word and two filters", f"/gallery/?q={SEARCH_WORD}&creator={users[2].pk}&aspect=landscape", {}),
        ("My favourites", "/gallery/?favourites=1", {}),
    ]


def live_count(team: Any) -> int:
    from generations.models import GalleryImage

    return GalleryImage.objects.for_team(team).live().count()


def page_rows(team: Any, users: list[Any], runs: int = 40) -> list[tuple[str, str]]:
    """Each gallery request's median and p95, its queries and tiles, and what it adds to the signed-in
    baseline (bench.gallery_depth) measured in turn with it."""
    from django.test import Client, override_settings

    from bench import gallery_depth

    client = Client()
    client.force_login(users[0])
    cases = page_cases(team, users)
    actions: dict[str, Callable[[], object]] = {
        "baseline": lambda: gallery_depth.get_ok(client, gallery_depth.SIGNED_IN)
    }
    for label, url, headers in cases:
        actions[label] = lambda url=url, headers=headers: gallery_depth.get_ok(client, url, **headers)  # type: ignore[misc]
    with override_settings(ROOT_URLCONF=gallery_depth.URLCONF):
        for action in actions.values():
            action()
        queries = {name: gallery_depth.query_count(action) for name, action in actions.items()}
        tiles = {
            label: gallery_depth.get_ok(client, url, **headers).content.decode().count('<li class="tile"')
            for label, url, headers in cases
        }
        taken = gallery_depth.interleaved(actions, runs)
    baseline, baseline_p95 = gallery_depth.median_p95(taken["baseline"])
    rows = [
        (
            "A signed-in view that does nothing (the baseline)",
            f"{baseline:.1f} ms median, {baseline_p95:.1f} ms p95, {queries['baseline']} queries",
        )
    ]
    for label, _, _ in cases:
        median, p95 = gallery_depth.median_p95(taken[label])
        rows.append(
            (
                f"{label} ({tiles[label]} images shown)",
                f"{median:.1f} ms median, {p95:.1f} ms p95, {queries[label]} queries; "
                f"{median - baseline:+.1f} ms over the baseline",
            )
        )
    return rows


def library_rows(count: int = 100_000) -> list[tuple[str, str]]:
    """Seed a team of five with `count` images and measure the gallery's pages, searches and filters, the
    reads that must not grow with depth (bench.gallery_depth) and the ZIP downloads."""
    from bench.gallery_depth import depth_rows

    started = time.perf_counter()
    team, users = seed_team(count)
    seeded = time.perf_counter() - started
    rows = [(f"Seeding {count:,} images (bulk inserts) and their tally", f"{seeded:.0f} s")]
    rows.extend(page_rows(team, users))
    rows.extend(depth_rows(team, users[0]))
    rows.extend(zip_rows(team, users[0]))
    return rows


def main() -> None:
    """Standalone: a throw-away database (BENCH_DATABASE_URL, else SQLite), results in docs/library.md."""
    standalone.setup("library")
    standalone.report("bench.library", library_rows(int(os.environ.get("BENCH_LIBRARY_IMAGES", "100000"))))


if __name__ == "__main__":
    main()
