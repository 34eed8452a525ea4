"""Storing generated images: `python -m bench.store` (part of `make bench`).

A 1024x1024 PNG of the size a real one has (about 2 MB: photo-like detail compresses little), stored as the
worker stores it: metadata spliced in and the PNG written on the storing thread while libvips decodes and
shrinks the picture on another core and Pillow encodes the JPEG thumbnail, then the thumbnail written and
the row saved. Then a job's four images stored at once, each by its own thread, as a job's requests answer
together (generations.running). The baseline, in the same run: Pillow alone decoding the PNG and encoding
the thumbnail as Studio did before (whole-picture bicubic resize, WebP method 4), so the ratio holds on a
busy machine; the absolute medians are reported beside it (the target: 25 ms), since two shared cores are
slower when others run.
"""

import io
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WORKDIR = Path(tempfile.mkdtemp(prefix="studio-store-"))
os.environ["STUDIO_VAR_DIR"] = str(WORKDIR)
os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{WORKDIR / 'bench.sqlite3'}")
os.environ.pop("REDIS_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from PIL import Image  # noqa: E402

RUNS = 40


def real_size_png(side: int = 1024) -> bytes:
    noise = np.random.default_rng(1).integers(0, 255, (side // 6, side // 6, 3), dtype=np.uint8)
    picture = Image.fromarray(noise).resize((side, side), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def medians_ms(*actions: Callable[[], object]) -> list[float]:
    """Each action's median, timed in turn within every round so that a busy spell slows them alike."""
    samples: list[list[float]] = [[] for _ in actions]
    for _ in range(RUNS):
        for action, times in zip(actions, samples, strict=True):
            started = time.perf_counter()
            action()
            times.append((time.perf_counter() - started) * 1000)
    return [statistics.median(times) for times in samples]


def pillow_before(png: bytes) -> bytes:
    """What storing decoded and encoded before: the baseline."""
    with Image.open(io.BytesIO(png)) as picture:
        picture.load()
        thumbnail = picture.convert("RGB")
    thumbnail.thumbnail((384, 384))
    webp = io.BytesIO()
    thumbnail.save(webp, "WEBP", quality=82)
    return webp.getvalue()


def store_rows() -> list[tuple[str, str]]:
    from accounts.services import user_signup
    from generations.imaging import picture_of
    from generations.models import GenerationJob
    from generations.running import image_store
    from generations.stability.types import Artifact

    call_command("migrate", verbosity=0)
    user = user_signup(username="store", email="store@example.com", password="bench-passphrase-1")
    png = real_size_png()
    assert user.current_team is not None
    job = GenerationJob.objects.create(
        team=user.current_team,
        created_by=user,
        engine_id="stable-diffusion-xl-1024-v1-0",
        prompt="bench",
        text_prompts=[{"text": "bench", "weight": 1.0}],
        width=1024,
        height=1024,
        samples=10,
        status="running",
    )
    index = iter(range(10**6))

    def store() -> None:
        # A new (job, index) slot each time, so that nothing but storing is timed.
        image_store(job=job, index=next(index), artifact=Artifact(png, 7, "SUCCESS"))

    def store_four_at_once() -> None:
        list(storers.map(lambda _: store(), range(4)))

    from django.db import connections

    storers = ThreadPoolExecutor(4)
    try:
        baseline, thumbnail, stored, four = medians_ms(
            lambda: pillow_before(png), lambda: picture_of(png), store, store_four_at_once
        )
    finally:
        storers.map(lambda _: connections.close_all(), range(4))
        storers.shutdown()
    return [
        (
            f"Storing one 1024x1024 image ({len(png) / 2**20:.1f} MiB PNG): metadata, decode, thumbnail, "
            "files and row",
            f"{stored:.1f} ms median; baseline (Pillow decode + thumbnail as before) {baseline:.1f} ms, "
            f"so {stored / baseline:.2f}× the baseline",
        ),
        (
            "A job's four 1024x1024 images stored at once, each by its own thread",
            f"{four / 4:.1f} ms an image ({four:.1f} ms for the four), "
            f"{four / 4 / baseline:.2f}× the baseline",
        ),
        (
            "Decode and thumbnail alone (imaging.picture_of)",
            f"{thumbnail:.1f} ms median, {thumbnail / baseline:.2f}× the baseline",
        ),
    ]


def main() -> None:
    try:
        rows = store_rows()
    finally:
        shutil.rmtree(WORKDIR, ignore_errors=True)  # every stored image and thumbnail, about 100 MB
    table = "| What | Measured |\n|---|---|\n" + "\n".join(f"| {what} | {value} |" for what, value in rows)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    when = time.strftime("%Y-%m-%d")
    print(f"\n## Storing images ({os.cpu_count()} cores, load {load}, {when})\n\n{table}\n")


if __name__ == "__main__":
    main()
