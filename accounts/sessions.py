"""Sessions read from the cache (SESSION_ENGINE = "accounts.sessions"), so a signed-in request does not
query the session table, and still read from the database when the cache cannot be reached."""

import logging
from typing import Any

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore

logger = logging.getLogger(__name__)


class SessionStore(cached_db.SessionStore):
    """Django's cached_db sessions (SESSION_ENGINE = "accounts.sessions"): read from the cache, written to
    the cache and the database, read from the database when the cache does not hold them. When the cache
    cannot be reached, they are read from the database alone, so that pages still answer (Django's own
    would fail the request when it stores what it read from the database back in the cache)."""

    def load(self) -> dict[str, Any]:
        try:
            return super().load()
        except Exception:  # as Django's cached_db catches the cache's errors: whatever the backend raises
            logger.warning("Sessions are read from the database: the cache cannot be reached", exc_info=True)
            return DatabaseSessionStore.load(self)

    def exists(self, session_key: str) -> bool:
        try:
            return super().exists(session_key)
        except Exception:
            return DatabaseSessionStore.exists(self, session_key)
