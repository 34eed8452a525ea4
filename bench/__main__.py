"""Studio's benchmarks: `make bench`. Prints a Markdown table and writes it to docs/benchmarks.md.

Runs on a throw-away SQLite database (or BENCH_DATABASE_URL), in-process through Django's test client,
so the numbers are the server's own cost without network or browser time.
"""

import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

WORKDIR = Path(tempfile.mkdtemp(prefix="studio-bench-"))
os.environ["STUDIO_VAR_DIR"] = str(WORKDIR)
os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{WORKDIR / 'bench.sqlite3'}")
os.environ.pop("REDIS_URL", None)
os.environ["STABILITY_API_KEY"] = ""
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def timed(action: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and 95th percentile in milliseconds."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def make_images(team, user, count: int) -> None:
    from generations.models import GalleryImage, GenerationJob

    now = timezone.now()
    job = GenerationJob.objects.create(
        team=team,
        created_by=user,
        engine_id="stable-diffusion-v1-6",
        prompt="bench",
        text_prompts=[{"text": "bench", "weight": 1.0}],
        width=512,
        height=512,
        samples=1,
        status="succeeded",
        finished_at=now,
    )
    GalleryImage.objects.bulk_create(
        [
            GalleryImage(
                job=job,
                index=i,
                team=team,
                created_by=user,
                image=f"images/{team.pk}/{i}.png",
                thumbnail=f"thumbnails/{team.pk}/{i}.jpg",
                width=512,
                height=512,
                seed=i + 1,
                created_at=now - timezone.timedelta(seconds=i),
            )
            for i in range(count)
        ],
        batch_size=2000,
    )


UPLOAD_CHECK = """
import io, resource, sys, time
import numpy as np
from PIL import Image
from generations.uploads import UploadRejected, clean_upload
from tests.bad_uploads import huge_png

if sys.argv[1] == "photo":
    noise = np.random.default_rng(1).integers(0, 255, (378, 504, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).resize((4032, 3024), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
else:
    data = huge_png(20_000, 20_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    clean_upload(data)
    outcome = "accepted"
except UploadRejected:
    outcome = "refused"
elapsed = (time.perf_counter() - started) * 1000
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(f"{len(data)} {outcome} {elapsed:.0f} {grown:.0f}")
"""


def upload_rows() -> list[tuple[str, str]]:
    """What checking an upload costs, each in a fresh process so that its peak resident memory (Pillow's
    pixel buffers included) is its own: a 12-megapixel phone photo, and a 20000x20000 PNG."""
    import subprocess

    rows = []
    for case, label in (("photo", "4032x3024 JPEG"), ("bomb", "20000x20000 PNG")):
        runs = [
            subprocess.run(
                [sys.executable, "-c", UPLOAD_CHECK, case],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            for _ in range(5)
        ]
        size, outcome = int(runs[0][0]), runs[0][1]
        millis = statistics.median(float(run[2]) for run in runs)
        grown = max(float(run[3]) for run in runs)
        rows.append(
            (
                f"Upload check, {label} ({size / 2**10:,.0f} KiB), {outcome}",
                f"{millis:.0f} ms median, {grown:.0f} MiB peak memory growth",
            )
        )
    return rows


def main() -> None:
    from accounts.services import user_signup
    from sandbox.services import key_create

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    settings.SANDBOX_KEY_FILE.write_text(key_create(credits=1_000_000, email="bench@example.com"))
    rows: list[tuple[str, str]] = []

    small = user_signup(username="small", email="small@example.com", password="bench-passphrase-1")
    large = user_signup(username="large", email="large@example.com", password="bench-passphrase-1")
    make_images(small.current_team, small, 100)
    make_images(large.current_team, large, 10_000)
    for user, count in ((small, 100), (large, 10_000)):
        client = Client()
        client.force_login(user)
        assert client.get("/gallery/").status_code == 200
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/gallery/")
        assert response.status_code == 200
        query_count = len(queries)  # now: the captured list is a view that later requests reset
        median, p95 = timed(lambda c=client: c.get("/gallery/"), 30)
        rows.append(
            (
                f"Gallery page, team with {count:,} images",
                f"{median:.1f} ms median, {p95:.1f} ms p95, {query_count} queries",
            )
        )
    client = Client()
    client.force_login(small)
    median, p95 = timed(lambda: client.get("/?engine=stable-diffusion-v1-6"), 30)
    rows.append(("Create page", f"{median:.1f} ms median, {p95:.1f} ms p95"))

    api = Client(HTTP_AUTHORIZATION=f"Bearer {settings.SANDBOX_KEY_FILE.read_text()}")
    for engine, size in (
        ("stable-diffusion-v1-6", (512, 512)),
        ("stable-diffusion-xl-1024-v1-0", (1024, 1024)),
    ):
        body = {"text_prompts": [{"text": "a lighthouse"}], "width": size[0], "height": size[1], "seed": 7}
        url = f"/sandbox/v1/generation/{engine}/text-to-image"
        tracemalloc.start()
        median, p95 = timed(lambda u=url, b=body: api.post(u, b, content_type="application/json"), 10)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        rows.append(
            (
                f"Sandbox text-to-image, 1 image {size[0]}x{size[1]}",
                f"{median:.0f} ms median, {p95:.0f} ms p95, {peak:.0f} MiB peak Python memory",
            )
        )

    rows.extend(upload_rows())
    from bench.library import library_rows  # the library at scale: search, filters, deep pages, ZIP

    rows.extend(library_rows(int(os.environ.get("BENCH_LIBRARY_IMAGES", "100000"))))

    table = "| What | Measured |\n|---|---|\n" + "\n".join(f"| {what} | {value} |" for what, value in rows)
    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {connection.vendor}"
    report = f"# Benchmarks\n\n`make bench` on {machine}, {time.strftime('%Y-%m-%d')}.\n\n{table}\n"
    (ROOT / "docs" / "benchmarks.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
