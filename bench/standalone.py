"""What a standalone benchmark (`python -m bench.<name>`) does before and after it measures: Django on a
throw-away database in a fresh folder, and the results printed as a Markdown table."""

import os
import sys
import tempfile
import time
from pathlib import Path


def setup(name: str, *, static: bool = True) -> Path:
    """Django on BENCH_DATABASE_URL (else SQLite in a new folder), migrated; the folder it works in."""
    workdir = Path(tempfile.mkdtemp(prefix=f"studio-bench-{name}-"))
    os.environ["STUDIO_VAR_DIR"] = str(workdir)
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}"
    )
    os.environ.pop("REDIS_URL", None)
    os.environ["STABILITY_API_KEY"] = ""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if static:
        call_command("collectstatic", interactive=False, verbosity=0)
    return workdir


def report(module: str, rows: list[tuple[str, str]], *, load: bool = False) -> None:
    """Print the rows as a table, headed by the machine, the database and the date."""
    from django.db import connection

    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {connection.vendor}"
    if load:
        average = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
        machine += f", load {average}"
    table = "| What | Measured |\n|---|---|\n" + "\n".join(f"| {what} | {value} |" for what, value in rows)
    print(f"`python -m {module}` on {machine}, {time.strftime('%Y-%m-%d')}.\n\n{table}")
