"""Secrets at rest: teams' Stability keys are Fernet-encrypted with key material from the environment.

Where the key material comes from
    STUDIO_FERNET_KEYS is a comma-separated list of Fernet keys, newest first. MultiFernet encrypts with
    the first and decrypts with any. Make a key with
        python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
    Without the variable (what `make run` does), a key is generated on first use and kept in
    STUDIO_VAR_DIR/fernet.key, readable by its owner only; every web and worker process reads the same file.

Rotating
    1. Make a new key and put it first, keeping the old one after it:
           STUDIO_FERNET_KEYS=<new>,<old>
       (moving off the local file: <old> is the content of STUDIO_VAR_DIR/fernet.key). Restart web and
       workers: new keys are sealed with <new>, old rows still open with <old>.
    2. `python manage.py rotate_team_keys` re-encrypts every team's key with <new> and says how many.
    3. Drop the old key: STUDIO_FERNET_KEYS=<new>, restart.
    Dropping a key before step 2 leaves the rows it sealed unreadable: those teams fall back to no key
    (their jobs fail with a message saying so) until an owner or admin sets the key again.
"""

import functools
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _key_file() -> Path:
    return Path(settings.VAR_DIR) / "fernet.key"


def _local_key() -> str:
    """The key in STUDIO_VAR_DIR/fernet.key, made on first use.

    Gunicorn's workers and Celery's processes may all get here first at once: each writes a complete key
    to a private temporary file and hard-links it into place, which fails if the name exists. So exactly
    one key wins, and no process ever reads a half-written file."""
    path = _key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".fernet-", suffix=".tmp")  # 0600
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(Fernet.generate_key().decode())
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except ValueError:
            raise ImproperlyConfigured(
                f"Key {position} of STUDIO_FERNET_KEYS is not a Fernet key (32 url-safe base64-encoded "
                "bytes); see accounts/crypto.py for how to make one."
            ) from None
    return MultiFernet(fernets)


def fernet() -> MultiFernet:
    keys = tuple(settings.STUDIO_FERNET_KEYS) or (_local_key(),)
    return _fernet(keys)


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    """The secret; cryptography.fernet.InvalidToken when no key in use sealed it."""
    return fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    """The same secret, encrypted with the newest key."""
    return fernet().rotate(token.encode()).decode()


def mask(key: str) -> str:
    """What a page may show of a key: its prefix and last four characters."""
    prefix = key[:3] if key.startswith("sk-") else ""
    return f"{prefix}…{key[-4:]}" if len(key) > 8 else "…"
