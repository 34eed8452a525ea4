"""Fixtures shared by every test package: a live sandbox over real HTTP, keys with credits, workers."""

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def sandbox_url(live_server) -> str:
    """The sandbox served by a real HTTP server in this test process, as Studio serves it under /sandbox."""
    return f"{live_server.url}/sandbox"


@pytest.fixture
def make_sandbox_key(transactional_db) -> Callable[..., str]:
    """A factory of sandbox API keys: make_sandbox_key(credits=100, email=...)."""

    from sandbox.services import key_create

    def make(credits: float = 1000, email: str = "team@example.com") -> str:
        return key_create(credits=credits, email=email)

    return make


@pytest.fixture
def sandbox_key(make_sandbox_key) -> str:
    return make_sandbox_key(credits=1000)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Tests make many users; the production hasher's deliberate slowness buys nothing here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _isolated_files_and_cache(settings, tmp_path):
    """Each test writes media and the studio key file under its own folder and starts with a cold cache."""
    from django.core.cache import cache

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SANDBOX_KEY_FILE = tmp_path / "sandbox.key"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _no_connections_kept_alive_between_tests():
    """The live server serves each kept-alive connection on a thread holding a database connection until
    the socket closes; closing the client's pool after each test lets PostgreSQL drop the test database."""
    yield
    from generations.stability.client import shared_http_close

    shared_http_close()


@pytest.fixture(autouse=True, scope="session")
def _celery_runs_tasks_in_process():
    """Without a worker, a task queued on commit runs in the test process (worker tests switch it off)."""
    from studio.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield


@pytest.fixture
def studio_engine(settings, sandbox_url, sandbox_key) -> str:
    """Studio pointed at the live sandbox with a funded studio key, as `make run` sets it up."""
    settings.STABILITY_API_HOST = sandbox_url
    settings.STABILITY_API_KEY = ""
    settings.SANDBOX_KEY_FILE.write_text(sandbox_key)
    return sandbox_key


@pytest.fixture
def user(db):
    from tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def authed_client(client, user):
    client.force_login(user)
    return client


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


BROKERS = ["redis", "embedded"]
ROOT = Path(__file__).resolve().parent.parent


def _broker(kind: str, folder: Path) -> tuple[str, dict, list[str]]:
    """URL, transport options and extra worker flags: Redis as in production, or the embedded SQLite
    broker that `make run` uses (which cannot broadcast, hence no gossip, mingle or heartbeat)."""
    if kind == "redis":
        return os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1", {"visibility_timeout": 900}, []
    return f"sqla+sqlite:///{folder / 'broker.sqlite3'}", {}, ["--without-heartbeat"]


@contextlib.contextmanager
def running_worker(broker_kind: str, pool: str, *, sandbox_url: str, settings, folder: Path):
    """A real `celery worker` process, reading this test's database and calling the live sandbox, with
    this process sending to it."""
    from studio.celery import app

    broker, transport_options, flags = _broker(broker_kind, folder)
    queue = f"test-{uuid.uuid4().hex[:8]}"  # so no other process's messages are picked up
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker,
        "STABILITY_API_HOST": sandbox_url,
        "STABILITY_API_KEY": "",
        "SANDBOX_KEY_FILE": str(settings.SANDBOX_KEY_FILE),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    env.pop("PYTEST_VERSION", None)
    log_path = folder / "worker.log"
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
        "2",
        "--queues",
        queue,
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        *flags,
    ]
    with open(log_path, "w") as log:
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    conf = app.conf
    saved = (conf.broker_url, conf.broker_transport_options, conf.task_default_queue, conf.task_always_eager)
    conf.broker_url, conf.broker_transport_options, conf.task_default_queue = broker, transport_options, queue
    conf.task_always_eager = False
    app._pool = app.amqp._producer_pool = None  # the producer pools were made for the old broker
    try:
        deadline = time.monotonic() + 30
        while "ready" not in log_path.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Celery worker did not start:\n" + log_path.read_text())
            time.sleep(0.2)
        yield worker
    finally:
        conf.broker_url, conf.broker_transport_options, conf.task_default_queue, conf.task_always_eager = (
            saved
        )
        app._pool = app.amqp._producer_pool = None
        worker.terminate()
        worker.wait(timeout=30)


@pytest.fixture(params=BROKERS)
def celery_worker_process(request, studio_engine, sandbox_url, settings, tmp_path):
    """A real worker (thread pool) on Redis, as in production, and on the embedded broker of `make run`."""
    with running_worker(
        request.param, "threads", sandbox_url=sandbox_url, settings=settings, folder=tmp_path
    ) as w:
        yield w


@pytest.fixture
def redis_worker(studio_engine, sandbox_url, settings, tmp_path):
    """One real worker (thread pool) on Redis, for journeys that need a worker but not every broker."""
    with running_worker("redis", "threads", sandbox_url=sandbox_url, settings=settings, folder=tmp_path) as w:
        yield w


@pytest.fixture
def prefork_worker(studio_engine, sandbox_url, settings, tmp_path):
    """A real worker with the production prefork pool on Redis, whose child processes a test may kill."""
    with running_worker("redis", "prefork", sandbox_url=sandbox_url, settings=settings, folder=tmp_path) as w:
        yield w
