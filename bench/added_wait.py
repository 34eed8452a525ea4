"""What a person waits beyond the API call: from the moment a job's image is stored (or the job is finished)
in the database to the page showing it.

Studio is served by gunicorn (gthread, as `make run` serves it) on a throw-away database, with the sandbox
as its engine. Jobs are made with `job_create` and run by `job_run` in this process, which notes the
moment each image row and each job's end are committed. Two measures:

- server side: a poller asks for the card as htmx does (HX-Request, the card's own `?v=`), every 50 ms,
  for jobs of 4 images 1024x1024; the wait ends when an answer holds the 4th image (or says finished).
  The same with every poll rendering the card (no version), as before, is the baseline of the same run.
- as a browser sees it: Debian's Chromium (Playwright) shows the card on the create page, polling as the
  card says; the wait ends when the image's `load` event fires, for jobs of 1 image 512x512.

`python -m bench.added_wait` runs it alone (BENCH_ADDED_WAIT_RUNS, default 40 per case).
"""

import http.client
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_ADDED_WAIT_RUNS", "40"))
SERVER_POLL_SECONDS = 0.05
CHROMIUM = "/usr/bin/chromium"
VERSION = re.compile(r'\?v=([^"]+)"')

# Commit moments (time.time()), noted by hooks in this process: each job's images, and its end.
images_stored: dict[str, list[float]] = defaultdict(list)
job_finished: dict[str, float] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def note_commits() -> None:
    """Note when each image row and each job's end are committed (after the transaction, not before)."""
    from django.db import transaction
    from django.db.models.signals import post_save

    from generations import running
    from generations.models import GalleryImage

    def image_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
        if created:
            job_id = str(instance.job_id)
            transaction.on_commit(lambda: images_stored[job_id].append(time.time()))

    post_save.connect(image_saved, sender=GalleryImage, weak=False)
    settle = running._requests_settle_dead

    # job_finish calls this (with no `before`) inside the transaction that ends the job.
    def settle_and_note(job: Any, *, before: int | None = None) -> None:
        settle(job, before=before)
        if before is None:
            job_id = str(job.pk)
            transaction.on_commit(lambda: job_finished.__setitem__(job_id, time.time()))

    running._requests_settle_dead = settle_and_note  # type: ignore[assignment]


@contextmanager
def studio_served(port: int) -> Iterator[None]:
    """gunicorn serving Studio (and its sandbox) on `port`, as `make run` does."""
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "studio.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "8",
            "--worker-class",
            "gthread",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        for _ in range(200):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", "/healthz")
                if connection.getresponse().status < 500:
                    break
            except OSError:
                time.sleep(0.1)
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


def make_job(user: Any, engine_id: str, side: int, samples: int) -> Any:
    from generations import services
    from generations.stability.contract import Prompt
    from generations.stability.types import TextToImageRequest

    request = TextToImageRequest(
        text_prompts=(Prompt("a lighthouse on a cliff at dawn"),), width=side, height=side, samples=samples
    )
    return services.job_create(team=user.current_team, user=user, engine_id=engine_id, request=request)


def run_job(job: Any) -> None:
    """Run it as a worker would, trying again (as the task does) if the server dropped a request."""
    from generations import running
    from generations.stability.types import TransientError

    for _ in range(3):
        try:
            running.job_run(job_id=job.pk)
            return
        except TransientError:
            time.sleep(0.5)
    raise RuntimeError(f"job {job.pk} did not run")


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, round(len(ordered) * 0.95) - 1)]
    return f"{statistics.median(ordered):.0f} ms p50, {p95:.0f} ms p95 (n={len(ordered)})"


def poll_until_finished(
    port: int, session: str, job_id: str, samples: int, versioned: bool
) -> dict[str, float]:
    """Ask for the card every SERVER_POLL_SECONDS as htmx does (a new request once the last one answered,
    on the next tick); when the answer held every image, and when it said finished."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": f"sessionid={session}", "HX-Request": "true"}
    seen: dict[str, float] = {}
    version = ""
    next_tick = time.perf_counter()
    while True:
        path = f"/jobs/{job_id}/" + (f"?v={version}" if versioned and version else "")
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read().decode()
        now = time.time()
        if response.status in (200, 286):
            if body.count("<img") >= samples:
                seen.setdefault("images", now)
            if match := VERSION.search(body):
                version = match[1]
        if response.status == 286:
            seen["finished"] = now
            return seen
        next_tick += SERVER_POLL_SECONDS
        time.sleep(max(0.0, next_tick - time.perf_counter()))


def server_rows(port: int, user: Any, session: str, runs: int) -> list[tuple[str, str]]:
    rows = []
    for versioned, label in ((True, "versioned poll"), (False, "every poll rendered, as before")):
        waits: dict[str, list[float]] = {"images": [], "finished": []}
        for _ in range(runs):
            job = make_job(user, "stable-diffusion-xl-1024-v1-0", 1024, 4)
            job_id = str(job.pk)
            seen: dict[str, float] = {}
            poller = threading.Thread(
                target=lambda s=seen, j=job_id, v=versioned: s.update(
                    poll_until_finished(port, session, j, 4, v)
                )
            )
            poller.start()
            time.sleep(random.uniform(0, SERVER_POLL_SECONDS))
            run_job(job)
            poller.join(timeout=60)
            waits["images"].append((seen["images"] - max(images_stored[job_id])) * 1000)
            waits["finished"].append((seen["finished"] - job_finished[job_id]) * 1000)
        rows.append(
            (
                f"Added wait, server side, 4 images 1024x1024, polling at 50 ms, {label}: from the 4th image "
                "stored",
                percentiles(waits["images"]),
            )
        )
        rows.append(
            (f"… the same, from the job finished in the database ({label})", percentiles(waits["finished"]))
        )
    return rows


SEEN_SCRIPT = """
window.__imageLoaded = {}; window.__finishedShown = {}; window.__imageSwapped = {};
const now = () => performance.timeOrigin + performance.now();
document.addEventListener("load", (event) => {
  const card = event.target instanceof HTMLImageElement && event.target.closest(".job-card");
  if (card && !(card.id in window.__imageLoaded)) window.__imageLoaded[card.id] = now();
}, true);
document.addEventListener("htmx:load", (event) => {
  const card = event.detail.elt;
  const finished = card.classList?.contains("job-card") && card.dataset.status === "succeeded";
  const withImage = card.querySelector?.(".thumbs img");
  if (withImage && !(card.id in window.__imageSwapped)) window.__imageSwapped[card.id] = now();
  if (finished && !(card.id in window.__finishedShown)) window.__finishedShown[card.id] = now();
});
"""


def browser_rows(port: int, user: Any, session: str, runs: int) -> list[tuple[str, str]]:
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # the ORM runs between Playwright's calls, in its thread
    waits: dict[str, list[float]] = {"image": [], "finished": [], "status": [], "swapped": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_cookies([{"name": "sessionid", "value": session, "url": f"http://127.0.0.1:{port}"}])
        context.add_init_script(SEEN_SCRIPT)
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        for _ in range(runs):
            job = make_job(user, "stable-diffusion-v1-6", 512, 1)
            card = f"job-{job.pk}"
            # As Generate does: the new card at the top of the list, polling from then on.
            page.evaluate(
                "id => htmx.ajax('GET', `/jobs/${id}/`, {target: '#jobs', swap: 'afterbegin'})", str(job.pk)
            )
            page.wait_for_selector(f"#{card}")
            time.sleep(random.uniform(0, 0.3))
            run_job(job)
            page.wait_for_function(
                "card => card in window.__imageLoaded && card in window.__finishedShown", arg=card
            )
            loaded = page.evaluate("card => window.__imageLoaded[card]", card) / 1000
            shown = page.evaluate("card => window.__finishedShown[card]", card) / 1000
            swapped = page.evaluate("card => window.__imageSwapped[card]", card) / 1000
            waits["swapped"].append((swapped - max(images_stored[str(job.pk)])) * 1000)
            waits["image"].append((loaded - max(images_stored[str(job.pk)])) * 1000)
            waits["finished"].append((loaded - job_finished[str(job.pk)]) * 1000)
            waits["status"].append((shown - job_finished[str(job.pk)]) * 1000)
        browser.close()
    return [
        (
            "Added wait in Chromium, 1 image 512x512: from the job finished in the database to its image "
            "loaded in the page",
            percentiles(waits["finished"]),
        ),
        ("… from the image stored to it loaded in the page", percentiles(waits["image"])),
        ("… from the image stored to the card holding it swapped in", percentiles(waits["swapped"])),
        ("… from the job finished to the card saying Succeeded", percentiles(waits["status"])),
    ]


def added_wait_rows(runs: int = RUNS) -> list[tuple[str, str]]:
    """Needs Django set up with CELERY_BROKER_URL=memory:// (no worker: this process runs the jobs) and
    STABILITY_API_HOST pointing at the port in BENCH_PORT."""
    from django.conf import settings
    from django.test import Client

    from accounts.services import user_signup
    from sandbox.services import key_create

    port = int(os.environ["BENCH_PORT"])
    settings.SANDBOX_KEY_FILE.write_text(key_create(credits=1_000_000, email="wait@example.com"))
    user = user_signup(username="waiter", email="waiter@example.com", password="bench-passphrase-1")
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    note_commits()
    with studio_served(port):
        rows = server_rows(port, user, session, runs)
        if Path(CHROMIUM).exists():
            rows += browser_rows(port, user, session, runs)
    return rows


def setup_environment(workdir: Path) -> None:
    """Before Django starts: a throw-away database and var folder, the sandbox on a free port, no worker."""
    port = free_port()
    os.environ["BENCH_PORT"] = str(port)
    os.environ["STUDIO_VAR_DIR"] = str(workdir)
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}"
    )
    os.environ.pop("REDIS_URL", None)
    os.environ["STABILITY_API_KEY"] = ""
    os.environ["STABILITY_API_HOST"] = f"http://127.0.0.1:{port}/sandbox"
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")


def main() -> None:
    setup_environment(Path(tempfile.mkdtemp(prefix="studio-bench-wait-")))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    rows = added_wait_rows()
    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {connection.vendor}"
    table = "| What | Measured |\n|---|---|\n" + "\n".join(f"| {what} | {value} |" for what, value in rows)
    print(f"`python -m bench.added_wait` on {machine}, {time.strftime('%Y-%m-%d')}.\n\n{table}")


if __name__ == "__main__":
    main()
