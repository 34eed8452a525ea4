"""Helpers for the job reliability and chaos tests: jobs made as the create page makes them, what the
sandbox really charged, and waiting for jobs to end while the reconciler runs as beat would."""

import contextlib
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path

from django.db.models import Sum

from accounts.models import User
from generations import reconcile, services
from generations.models import ApiRequest, GenerationJob
from generations.stability.contract import Prompt, price_per_image
from generations.stability.types import TextToImageRequest
from sandbox.models import ApiKey, Organization

ENGINE = "stable-diffusion-v1-6"
SIDE = 320  # the engine's smallest side: quick to draw, priced as 512x512
PRICE = price_per_image(ENGINE, steps=30, width=SIDE, height=SIDE)


def job_make(user: User, *, samples: int = 1, seed: int = 0, prompt: str = "a lighthouse") -> GenerationJob:
    """A job through job_create, as Generate makes it (queued, or run at once when Celery is eager)."""
    request = TextToImageRequest(
        text_prompts=(Prompt(prompt),), width=SIDE, height=SIDE, samples=samples, seed=seed, steps=30
    )
    return services.job_create(team=user.current_team, user=user, engine_id=ENGINE, request=request)


def key_faults(key: str, **faults: float) -> None:
    """Set the sandbox key's faults: latency_ms, error_rate, throttle_rate, hang_rate."""
    ApiKey.objects.filter(key=key).update(**faults)


def sandbox_credits(key: str) -> Decimal:
    """What the sandbox organization behind `key` has left, read from its own table."""
    return Organization.objects.get(memberships__account__keys__key=key, memberships__is_default=True).credits


def recorded(jobs: Iterable[GenerationJob], outcome: str) -> Decimal:
    """Credits recorded against the jobs' requests with this outcome."""
    total = ApiRequest.objects.filter(job__in=list(jobs), outcome=outcome).aggregate(total=Sum("credits"))
    return total["total"] or Decimal(0)


def wait_terminal(
    jobs: list[GenerationJob], seconds: float, *, beat: float | None = 1.0
) -> tuple[float, Counter[str]]:
    """Wait until every job has ended, running the reconciler every `beat` seconds as Celery beat would
    (None: never). Returns how long it took and what the reconciler did; fails, naming the stuck jobs,
    after `seconds`."""
    started = time.monotonic()
    next_pass = started
    done: Counter[str] = Counter()
    pks = [job.pk for job in jobs]
    while True:
        unfinished = GenerationJob.objects.filter(pk__in=pks, status__in=["queued", "running"])
        if not unfinished.exists():
            return time.monotonic() - started, done
        now = time.monotonic()
        if now - started > seconds:
            stuck = list(unfinished.values_list("pk", "status", "attempts"))
            raise AssertionError(f"{len(stuck)} jobs not finished after {seconds} s: {stuck[:10]}")
        if beat is not None and now >= next_pass:
            done += reconcile.jobs_reconcile()
            next_pass = now + beat
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A Redis server of the test's own, without persistence, never the machine's: `restart()` kills it
    (-9) and starts it again empty, as a Redis restart without persistence does."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder = port, folder
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
        ]
        self.process = subprocess.Popen(
            [*command, "no", "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, down_for: float = 1.0) -> None:
        self.kill()
        time.sleep(down_for)
        self.start()


@contextlib.contextmanager
def redis_server(port: int, folder: Path) -> Iterator[RedisServer]:
    server = RedisServer(port, folder)
    server.start()
    try:
        yield server
    finally:
        server.kill()
