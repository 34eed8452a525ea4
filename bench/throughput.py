"""Generation throughput in the production shape: `python -m bench.throughput` (part of `make bench`).

PostgreSQL, Redis, one real Celery worker process with the pool `make run` uses, and the sandbox served over
real HTTP by gunicorn, with 5 s of latency on every request and its own rate limit at the platform's 150
requests per 10 s. Twelve people in three teams queue one-image jobs; the run counts images per second and
the sandbox's 429s. The baseline, in the same run: the same number of requests sent straight to the sandbox
by 100 threads keeping to the same limiter, with no database, queue or storing (the ceiling Studio can reach).

BENCH_PG_URL (a server where a throw-away database may be made; default postgres://postgres@127.0.0.1:5432),
BENCH_REDIS_URL (default redis://127.0.0.1:6379/0; every key and queue is named for this run), BENCH_POOLS
(default "threads:<CELERY_CONCURRENCY>"; e.g. "threads:100,threads:50x2,prefork:8" to compare pools; the
past-the-limit run uses the first), BENCH_JOBS (default 600), BENCH_TRACE (set: print requests sent, jobs
running and jobs queued every half second).
"""

import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = Path(tempfile.mkdtemp(prefix="studio-throughput-"))
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
DB_NAME = f"studio_throughput_{secrets.token_hex(3)}"
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
LATENCY_MS = 5000
ENGINE = "stable-diffusion-v1-6"
SIDE = 320  # the engine's smallest: the sandbox draws it quickly, so its own CPU is not what is measured
PEOPLE, TEAMS = 12, 3

ENV = {
    "STUDIO_VAR_DIR": str(WORKDIR),
    "MEDIA_ROOT": str(WORKDIR / "media"),
    "DATABASE_URL": f"{PG_SERVER}/{DB_NAME}",
    "REDIS_URL": REDIS,
    "CELERY_BROKER_URL": REDIS,
    "STABILITY_API_KEY": "",
    "SANDBOX_KEY_FILE": str(WORKDIR / "sandbox.key"),
    "DJANGO_SETTINGS_MODULE": "studio.settings",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SANDBOX_PORT = free_port()
ENV["STABILITY_API_HOST"] = f"http://127.0.0.1:{SANDBOX_PORT}"
os.environ.update(ENV)


def reachable() -> str:
    """Why the run cannot happen here ("" when it can)."""
    import psycopg
    import redis

    try:
        psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_SERVER} is unreachable ({exc})"
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS} is unreachable ({exc})"
    return ""


def database(action: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'{action} DATABASE {"IF EXISTS " if action == "DROP" else ""}"{DB_NAME}"')


def started(command: list[str], env: dict[str, str], log: Path, ready: str) -> subprocess.Popen[bytes]:
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while ready not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{command[0]} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def sandbox() -> subprocess.Popen[bytes]:
    """The sandbox alone on its port, as `make sandbox` serves it, holding a thread per request in flight.
    It does not keep database connections (each request waits 5 s without one, and PostgreSQL allows 100)."""
    command = [
        f"{sys.prefix}/bin/gunicorn",
        "studio.wsgi",
        "--bind",
        f"127.0.0.1:{SANDBOX_PORT}",
        "--workers",
        "2",
        "--threads",
        "100",
        "--worker-class",
        "gthread",
        "--timeout",
        "120",
        "--keep-alive",
        "75",
    ]
    env = {"SANDBOX_STANDALONE": "1", "DATABASE_CONN_MAX_AGE": "0", "SANDBOX_RATE_LIMIT": "150"}
    return started(command, env, WORKDIR / "sandbox.log", "Booting worker")


def worker(pool: str, concurrency: int, queue: str, number: int = 0) -> subprocess.Popen[bytes]:
    """One worker process as `make worker` starts it (pool and concurrency as given)."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "studio",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--queues",
        queue,
        "--loglevel",
        "INFO",
        "--hostname",
        f"bench{number}@%h",
    ]
    env = {"DATABASE_CONN_MAX_AGE": "0", "CELERY_CONCURRENCY": str(concurrency)}
    return started(command, env, WORKDIR / f"worker-{pool}-{queue}-{number}.log", "ready.")


def key_with(latency_ms: int) -> str:
    from sandbox.models import ApiKey
    from sandbox.services import key_create

    key = key_create(credits=10_000_000, email=f"bench-{secrets.token_hex(4)}@example.com")
    ApiKey.objects.filter(key=key).update(latency_ms=latency_ms)
    return key


def locked_out(key: str) -> bool:
    from sandbox.models import ApiKey

    return bool(ApiKey.objects.get(key=key).locked_until)


def baseline(requests: int) -> dict[str, Any]:
    """Requests sent straight to the sandbox, 100 at a time, through Studio's client and limiter only."""
    from generations.stability.client import StabilityClient
    from generations.stability.contract import Prompt
    from generations.stability.types import StabilityError, TextToImageRequest

    request = TextToImageRequest(text_prompts=(Prompt("a lighthouse"),), width=SIDE, height=SIDE, seed=1)
    # Warm the sandbox's processes first (imports, first connections) with another key: a cold server
    # answers its first requests late and together, and the burst can land in one of its windows.
    warm = StabilityClient(api_key=key_with(0), host=os.environ["STABILITY_API_HOST"], read_timeout=60)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: warm.text_to_image(ENGINE, request), range(24)))
    key = key_with(LATENCY_MS)
    client = StabilityClient(api_key=key, host=os.environ["STABILITY_API_HOST"], read_timeout=60)
    client.rate_wait = 60
    finished: list[float] = []
    refused = 0

    def send(_: int) -> None:
        nonlocal refused
        try:
            client.text_to_image(ENGINE, request)
            finished.append(time.monotonic())
        except StabilityError as exc:
            refused += exc.status == 429

    begun = time.monotonic()
    with ThreadPoolExecutor(100) as pool:
        list(pool.map(send, range(requests)))
    return summary(begun, sorted(finished), refused=refused, failed=requests - len(finished), key=key)


def summary(
    begun: float, finished: list[float], latency_ms: int = LATENCY_MS, **facts: Any
) -> dict[str, Any]:
    """Images per second overall (first request to last image), and sustained: past the first answers and
    the first window, when the limiter alone sets the pace."""
    total = finished[-1] - begun if finished else 0.0
    settled = begun + latency_ms / 1000 + 10
    later = [t for t in finished if t >= settled]
    sustained = (len(later) - 1) / (later[-1] - later[0]) if len(later) > 1 else 0.0
    rates = {
        "images": len(finished),
        "seconds": total,
        "overall": len(finished) / total,
        "sustained": sustained,
    }
    return rates | facts


def people() -> list[Any]:
    """Twelve people in three teams, each working in their team."""
    from accounts.models import Membership
    from accounts.services import user_signup
    from accounts.services.teams import team_create, team_switch

    users = [
        user_signup(username=f"person{i}", email=f"person{i}@example.com", password="bench-passphrase-1")
        for i in range(PEOPLE)
    ]
    for t in range(TEAMS):
        members = users[t::TEAMS]
        team = team_create(user=members[0], name=f"Team {t}")
        for member in members[1:]:
            Membership.objects.create(team=team, user=member, role=Membership.Role.MEMBER)
        for member in members:
            team_switch(user=member, team=team)
            member.refresh_from_db()
    return users


def studio_run(users: list[Any], jobs: int, *, latency_ms: int) -> dict[str, Any]:
    """Queue `jobs` one-image jobs, round-robin over the people, and wait for every one to end."""
    from django.conf import settings

    from generations import services
    from generations.models import ApiRequest, GalleryImage, GenerationJob
    from generations.stability.contract import Prompt
    from generations.stability.types import TextToImageRequest

    key = key_with(latency_ms)
    settings.SANDBOX_KEY_FILE.write_text(key)
    request = TextToImageRequest(
        text_prompts=(Prompt("a lighthouse at dusk"),), width=SIDE, height=SIDE, samples=1, steps=30
    )
    begun = time.monotonic()
    wall_begun = time.time()
    made = [
        services.job_create(
            team=users[i % len(users)].current_team,
            user=users[i % len(users)],
            engine_id=ENGINE,
            request=request,
        ).pk
        for i in range(jobs)
    ]
    deadline = begun + 60 + jobs / 5
    pending = GenerationJob.objects.filter(pk__in=made, status__in=["queued", "running"])
    in_flight = ApiRequest.objects.filter(job__in=made, outcome=ApiRequest.Outcome.PENDING)
    samples = []
    while pending.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pending.count()} jobs still unfinished")
        queued = pending.filter(status="queued").count()
        samples.append((in_flight.count(), pending.filter(status="running").count(), queued))
        if os.environ.get("BENCH_TRACE"):
            print(f"{time.monotonic() - begun:6.1f} s: {samples[-1]} (sent, running, queued)", flush=True)
        time.sleep(0.5)
    stored = GalleryImage.objects.filter(job__in=made).values_list("created_at", flat=True)
    finished = sorted(begun + (t.timestamp() - wall_begun) for t in stored)
    statuses = GenerationJob.objects.filter(pk__in=made)
    return summary(
        begun,
        finished,
        latency_ms,
        failed=statuses.exclude(status="succeeded").count(),
        refused=ApiRequest.objects.filter(job__in=made, status_code=429).count(),
        attempts=max(statuses.values_list("attempts", flat=True)),
        requests_in_flight=max(sample[0] for sample in samples) if samples else 0,
        running=max(sample[1] for sample in samples) if samples else 0,
        # While jobs still wait in the queue, every slot the limits and the limiter allow should be in use.
        sent_while_queued=statistics.median([sample[0] for sample in samples if sample[2]] or [0]),
        key=key,
    )


def pools() -> list[tuple[str, int, int]]:
    """Pool, concurrency and processes of each configuration to measure: "threads:100", "threads:50x2"
    (two worker processes on the host), "prefork:8"."""
    default = f"threads:{os.environ.get('CELERY_CONCURRENCY', '100')}"
    chosen = []
    for item in os.environ.get("BENCH_POOLS", default).split(","):
        pool, _, size = item.partition(":")
        concurrency, _, processes = size.partition("x")
        chosen.append((pool.strip(), int(concurrency or 100), int(processes or 1)))
    return chosen


def throughput_rows() -> list[tuple[str, str]]:
    if why := reachable():
        return [("Throughput at 5 s upstream latency", f"not measured: {why}")]
    database("CREATE")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        from studio.celery import app

        call_command("migrate", verbosity=0)
        processes.append(sandbox())
        users = people()
        jobs = int(os.environ.get("BENCH_JOBS", "600"))
        rows = []
        base = baseline(jobs)
        rows.append(
            (
                f"Baseline: {jobs} requests straight to the sandbox, 100 threads, limiter only",
                f"{base['sustained']:.1f} images/s sustained ({base['overall']:.1f} overall), "
                f"{base['refused']} × 429, {base['failed']} failed",
            )
        )
        for index, (pool, concurrency, count) in enumerate(pools()):
            queue = f"bench-{secrets.token_hex(4)}"
            app.conf.task_default_queue = queue
            workers = [worker(pool, concurrency, queue, n) for n in range(count)]
            processes.extend(workers)
            shape = f"{pool}, {concurrency}" + (f", {count} processes" if count > 1 else "")
            run = studio_run(users, jobs, latency_ms=LATENCY_MS)
            print(rows[-1], flush=True)
            rows.append(
                (
                    f"Studio: {jobs} one-image jobs of {PEOPLE} people, 5 s latency, worker ({shape})",
                    f"{run['sustained']:.1f} images/s sustained ({run['overall']:.1f} overall, "
                    f"{run['sustained'] / base['sustained']:.0%} of the baseline), {run['refused']} × 429, "
                    f"{run['failed']} failed, key locked out: {'yes' if locked_out(run['key']) else 'no'}; "
                    f"at most {run['running']} jobs running, {run['requests_in_flight']} requests sent; "
                    f"median {run['sent_while_queued']:.0f} requests in flight while jobs were queued",
                )
            )
            if index == 0:
                fast = studio_run(users, 200, latency_ms=0)
                rows.append(
                    (
                        f"Studio past the limit: 200 jobs, no latency, worker ({shape})",
                        f"{fast['seconds']:.1f} s ({fast['overall']:.1f} images/s), "
                        f"{fast['refused']} × 429, {fast['failed']} failed, at most {fast['attempts']} "
                        "attempt per job",
                    )
                )
            for process in workers:
                stop(process)
                processes.remove(process)
        rows.append(
            (
                "Limiter and limits",
                f"STABILITY_RATE_LIMIT {settings.STABILITY_RATE_LIMIT} per "
                f"{settings.STABILITY_RATE_WINDOW_SECONDS} s; "
                f"{settings.JOB_MAX_IN_FLIGHT_PER_USER} jobs per person, "
                f"{settings.JOB_MAX_IN_FLIGHT_PER_TEAM} per team",
            )
        )
        return rows
    finally:
        for process in processes:
            stop(process)
        from django.db import connections

        connections.close_all()
        database("DROP")


def main() -> None:
    rows = throughput_rows()
    table = "| What | Measured |\n|---|---|\n" + "\n".join(f"| {what} | {value} |" for what, value in rows)
    print(f"\n## Throughput ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})\n\n{table}\n")


if __name__ == "__main__":
    main()
