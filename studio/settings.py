"""Studio's one settings module. Every value comes from the environment (see .env.example) with
defaults that make `make run` work offline: SQLite, an embedded broker and the sandbox engine."""

import base64
import hashlib
import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("STUDIO_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()  # blank (as .env.example leaves it) is the default
    return value in {"1", "true", "yes", "on"} if value else default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG")
RUNNING_TESTS = bool(os.environ.get("PYTEST_VERSION"))
LOCAL_HOSTS = "127.0.0.1,localhost,[::1],testserver"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", LOCAL_HOSTS)
# Serving any host name beyond this machine's own is production: HTTPS only, secure cookies, HSTS,
# sign-up by invitation, and a secret key that must be given. `make run` and the tests are local.
PRODUCTION = not DEBUG and any(host not in LOCAL_HOSTS.split(",") for host in ALLOWED_HOSTS)
# Keys published in this repository's history and examples: never a production secret.
PUBLIC_SECRET_KEYS = {"insecure-local-only-key-change-me-in-production", "change-me"}


def local_secret_key(path: Path) -> str:
    """A random key kept in STUDIO_VAR_DIR/secret.key, made on first use; every local process (web,
    workers) reads the same file, and the first to write it wins (as accounts/crypto.py does)."""
    if not path.exists():
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-", suffix=".tmp")  # 0600
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


def secret_key() -> str:
    given = os.environ.get("DJANGO_SECRET_KEY", "").strip()
    weak = (  # Django's own test of a secret key (security.W009), and the keys anyone can read here
        given in PUBLIC_SECRET_KEYS
        or len(given) < 50
        or len(set(given)) < 5
        or given.startswith("django-insecure-")
    )
    if PRODUCTION and weak:
        raise ImproperlyConfigured(
            f"Studio serves {', '.join(ALLOWED_HOSTS)} and will not start without a secret key of its own: "
            "set DJANGO_SECRET_KEY to 50 or more random characters, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    return given or local_secret_key(VAR_DIR / "secret.key")


SECRET_KEY = secret_key()
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
PORT = int(os.environ.get("PORT", "8000"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "accounts",
    "generations",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.CurrentTeamMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in into the lock-out page
]

# `make sandbox` serves only the Stability v1 API, at the root of its own port, as api.stability.ai does.
SANDBOX_STANDALONE = env_bool("SANDBOX_STANDALONE")
ROOT_URLCONF = "sandbox.urls" if SANDBOX_STANDALONE else "studio.urls"
WSGI_APPLICATION = "studio.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.studio",
            ],
        },
    }
]

DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'studio.sqlite3'}")
CONN_MAX_AGE = int(os.environ.get("DATABASE_CONN_MAX_AGE", "60"))
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=CONN_MAX_AGE, conn_health_checks=True)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # gunicorn threads and the Celery worker write concurrently: WAL plus IMMEDIATE transactions
    # turn "database is locked" into a short wait. https://docs.djangoproject.com/en/6.1/ref/databases/#sqlite-notes
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that a test's Celery worker process sees the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-studio.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "generations:create"
LOGOUT_REDIRECT_URL = "accounts:login"

# django-axes first: it refuses a locked-out username+address before the password is even checked. Then
# Django's ModelBackend, whose look-up of the signed-in user on each request also brings their current team
# (accounts/backends.py); Django's own stays listed for sessions signed in under its name before.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.UserWithTeamBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Sessions are read from the cache (Redis with REDIS_URL, else files) and written through to the database,
# so a signed-in request does not query the session table; a session missing from the cache, or a cache
# that cannot be reached, is read from the database. Django's cached_db, kept working without the cache
# (accounts/sessions.py). https://docs.djangoproject.com/en/6.1/topics/http/sessions/#using-cached-sessions
SESSION_ENGINE = "accounts.sessions"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# Teams' Stability keys are encrypted with these Fernet keys, newest first (see accounts/crypto.py for
# rotation); blank keeps a generated key in STUDIO_VAR_DIR/fernet.key.
STUDIO_FERNET_KEYS = env_list("STUDIO_FERNET_KEYS")
INVITE_LIFETIME_DAYS = int(os.environ.get("INVITE_LIFETIME_DAYS", "7"))
# The header warns when the team's balance falls below this many credits.
LOW_BALANCE_CREDITS = float(os.environ.get("LOW_BALANCE_CREDITS", "20"))

# Mail (invitations): SMTP when EMAIL_HOST is set, else written to the console so nothing is lost.
# https://docs.djangoproject.com/en/6.1/topics/email/ (MAILERS replaces the EMAIL_* settings)
email_host = os.environ.get("EMAIL_HOST", "")
email_user = os.environ.get("EMAIL_USER", "")
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": email_host,
            "port": int(os.environ.get("EMAIL_PORT", "587")),
            "username": email_user,
            "password": os.environ.get("EMAIL_PASSWORD", ""),
            "use_tls": env_bool("EMAIL_USE_TLS", default=bool(email_user)),
            "timeout": 10,
        },
    }
    if email_host
    else {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Studio <studio@localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Tests and DEBUG serve static files without `collectstatic`'s manifest.
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not (DEBUG or RUNNING_TESTS)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024

# Celery: the embedded broker is kombu's SQLAlchemy transport on a SQLite file; REDIS_URL replaces it.
CELERY_BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL") or REDIS_URL or f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = 360
CELERY_TASK_TIME_LIMIT = 420
# Redis redelivers unacknowledged tasks after this; well above the hard time limit, so a task still
# running is never handed to a second worker. (The SQLAlchemy transport takes no such option.)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 900} if CELERY_BROKER_URL.startswith("redis") else {}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The reconciler (generations/reconcile.py, run by Celery beat every JOB_RECONCILE_SECONDS, read in
# studio/celery.py): a queued job silent this long lost its task and is sent again; a running job silent
# this long lost its worker and is taken back. One image's request gives up after JOB_REQUEST_TIMEOUT_SECONDS,
# so a live run is never silent longer than that.
JOB_REQUEST_TIMEOUT_SECONDS = float(os.environ.get("JOB_REQUEST_TIMEOUT_SECONDS", "60"))
# A job of several images asks for up to this many at the same time (each one request, recorded and
# charged as when they go one by one): four images arrive in one answer's time.
JOB_IMAGES_AT_ONCE = env_int("JOB_IMAGES_AT_ONCE", 4)
JOB_QUEUED_GRACE_SECONDS = float(os.environ.get("JOB_QUEUED_GRACE_SECONDS", "60"))
JOB_STALE_SECONDS = float(os.environ.get("JOB_STALE_SECONDS", "90"))
# Fairness (generations/queueing.py): at most this many jobs running per person and per team; the rest wait
# in the queue, and the fairest (fewest running, oldest first) starts when a slot frees.
JOB_MAX_IN_FLIGHT_PER_USER = env_int("JOB_MAX_IN_FLIGHT_PER_USER", 8)
JOB_MAX_IN_FLIGHT_PER_TEAM = env_int("JOB_MAX_IN_FLIGHT_PER_TEAM", 48)

# The Stability engine. With no STABILITY_API_KEY, Studio uses the local sandbox and the key that
# `make run` created for it; setting STABILITY_API_KEY alone points Studio at the real API.
STABILITY_API_KEY = os.environ.get("STABILITY_API_KEY", "")
STABILITY_USES_SANDBOX = not STABILITY_API_KEY
STABILITY_API_HOST = os.environ.get(
    "STABILITY_API_HOST",
    "https://api.stability.ai" if STABILITY_API_KEY else f"http://127.0.0.1:{PORT}/sandbox",
).rstrip("/")
STABILITY_ORGANIZATION = os.environ.get("STABILITY_ORGANIZATION", "")
SANDBOX_KEY_FILE = Path(os.environ.get("SANDBOX_KEY_FILE", VAR_DIR / "sandbox.key"))


def default_engine(api_key: str, chosen: str = "") -> str:
    """The model the create form starts with: the one chosen (STABILITY_DEFAULT_ENGINE) when not blank;
    else Stable Image Core on the real API, whose v1 keeps only SDXL 1.0 and no new features; else, with
    the sandbox, SDXL 1.0 as before."""
    return chosen.strip() or ("stable-image-core" if api_key else "stable-diffusion-xl-1024-v1-0")


STABILITY_DEFAULT_ENGINE = default_engine(STABILITY_API_KEY, os.environ.get("STABILITY_DEFAULT_ENGINE", ""))
STABILITY_BALANCE_CACHE_SECONDS = int(os.environ.get("STABILITY_BALANCE_CACHE_SECONDS", "30"))
STABILITY_ENGINES_CACHE_SECONDS = int(os.environ.get("STABILITY_ENGINES_CACHE_SECONDS", "600"))
STABILITY_ACCOUNT_CACHE_SECONDS = env_int("STABILITY_ACCOUNT_CACHE_SECONDS", 300)
# Every request with a key (jobs and pages) takes a slot in a moving window shared by all processes
# (generations/stability/limiter.py), under the platform's 150 per 10 s. 145 leaves 5 requests for the
# spread between sending and arriving (a third of a second at full pace) and lets a studio reach 14.5
# images/s; 140 would cap it at 14. A job waits up to STABILITY_RATE_MAX_WAIT_SECONDS for a slot (well
# inside JOB_STALE_SECONDS), then waits in the queue.
STABILITY_RATE_LIMIT = env_int("STABILITY_RATE_LIMIT", 145)
STABILITY_RATE_WINDOW_SECONDS = env_int("STABILITY_RATE_WINDOW_SECONDS", 10)
STABILITY_RATE_STORAGE = os.environ.get("STABILITY_RATE_STORAGE") or REDIS_URL or "memory://"
STABILITY_RATE_MAX_WAIT_SECONDS = float(os.environ.get("STABILITY_RATE_MAX_WAIT_SECONDS", "20"))
# A job waits out lock-outs for this long in all before it fails.
STABILITY_RATE_GIVE_UP_SECONDS = float(os.environ.get("STABILITY_RATE_GIVE_UP_SECONDS", "900"))
# An asynchronous Stable Image result (creative upscale, relight) is asked for again after this long; the
# platform asks for no more than one poll every 10 s per result.
STABILITY_RESULT_POLL_SECONDS = float(os.environ.get("STABILITY_RESULT_POLL_SECONDS", "10"))
# Connections each process may open to the API: one per request in flight. A worker's threads (100) each
# ask for up to JOB_IMAGES_AT_ONCE (4) images at once; the rate limit keeps fewer in flight at ordinary
# latencies, but a slow model could otherwise leave requests waiting for a connection.
STABILITY_HTTP_CONNECTIONS = env_int("STABILITY_HTTP_CONNECTIONS", 416)

# The sandbox: moderation words and fault injection (see README, "The sandbox").
SANDBOX_BANNED_WORDS = env_list("SANDBOX_BANNED_WORDS", "contraband")
SANDBOX_FLAGGED_WORDS = env_list("SANDBOX_FLAGGED_WORDS", "lurid")
SANDBOX_FAULTS = os.environ.get("SANDBOX_FAULTS", "")
SANDBOX_HANG_SECONDS = float(os.environ.get("SANDBOX_HANG_SECONDS", "120"))
SANDBOX_RATE_LIMIT = int(os.environ.get("SANDBOX_RATE_LIMIT", "150"))
SANDBOX_RATE_WINDOW_SECONDS = 10
SANDBOX_RATE_LOCKOUT_SECONDS = 60
SANDBOX_ASYNC_SECONDS = float(os.environ.get("SANDBOX_ASYNC_SECONDS", "5"))
# Which v1 engines the sandbox serves: "all" it knows, or "current", only those the platform's v1 document
# still lists (September 2026: SDXL 1.0, no upscalers), to try Studio against v1 as it is today.
SANDBOX_V1_ENGINES = (os.environ.get("SANDBOX_V1_ENGINES", "").strip() or "all").lower()
if SANDBOX_V1_ENGINES not in {"all", "current"}:
    raise ImproperlyConfigured(f"SANDBOX_V1_ENGINES is {SANDBOX_V1_ENGINES!r}: use all or current.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},  # lock-outs, not a line for every sign-in
        "pyvips": {"level": "WARNING"},  # libvips' problems, not its lines for every thumbnail
    },
}

# --- Closed to strangers ---
# Who may create an account: anyone ("open"), only someone holding a team's invite link ("invite"), or
# nobody ("closed"). The first account of a new studio can always be made: it becomes the studio's admin.
SIGNUP_MODE = (os.environ.get("SIGNUP_MODE", "").strip() or ("invite" if PRODUCTION else "open")).lower()
if SIGNUP_MODE not in {"open", "invite", "closed"}:
    raise ImproperlyConfigured(f"SIGNUP_MODE is {SIGNUP_MODE!r}: use open, invite or closed.")
# What each team may keep in uploaded init images; unused uploads are cleared after a day.
TEAM_UPLOAD_QUOTA_MB = env_int("TEAM_UPLOAD_QUOTA_MB", 500)

# Behind a reverse proxy: how many proxies in front add to X-Forwarded-For (0: clients connect directly).
# Trusting them gives the client's address for throttling and lock-outs, and HTTPS from X-Forwarded-Proto.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = env_bool("DJANGO_USE_X_FORWARDED_HOST", True)
# https://docs.djangoproject.com/en/6.1/ref/middleware/#http-strict-transport-security
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the container health check asks over plain HTTP
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", PRODUCTION)
X_FRAME_OPTIONS = "DENY"
# Scripts and styles from Studio's own static files only: no inline script, style or handler runs. The
# one hash is the indicator style htmx inserts at start-up (static/js/htmx.min.js).
HTMX_INDICATOR_STYLE = (
    ".htmx-indicator{opacity:0;visibility: hidden} .htmx-request .htmx-indicator, "
    ".htmx-request.htmx-indicator{opacity:1;visibility: visible;transition: opacity 200ms ease-in}"
)
_htmx_style_hash = base64.b64encode(hashlib.sha256(HTMX_INDICATOR_STYLE.encode()).digest()).decode()
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, f"'sha256-{_htmx_style_hash}'"],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# Sign-in: django-axes locks a username at one address out after LOGIN_FAILURE_LIMIT wrong passwords;
# during the lock-out even the right password is refused. Failures are rows in the database.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lock-out ends when it said it would
AXES_DISABLE_ACCESS_LOG = True  # keep failures only, not a row per successful sign-in
AXES_VERBOSE = False
AXES_CLIENT_IP_CALLABLE = "studio.throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.views.account.login_locked_out"
# Other forms: django-ratelimit counts POSTs per signed-in user (sign-up: per address) in the default
# cache, as "count/period" (s, m, h, d; "15m" is fifteen minutes).
RATELIMIT_IP_META_KEY = "studio.throttling.client_ip"
THROTTLE_RATES = {
    "signup": os.environ.get("THROTTLE_SIGNUP_RATE") or "10/h",
    "password": os.environ.get("THROTTLE_PASSWORD_RATE") or "5/15m",
    "upload": os.environ.get("THROTTLE_UPLOAD_RATE") or "60/10m",
    "generate": os.environ.get("THROTTLE_GENERATE_RATE") or "60/10m",
}
# /healthz answers anonymous callers from state at most this old, so that probes cost nothing upstream.
HEALTHZ_CACHE_SECONDS = env_int("HEALTHZ_CACHE_SECONDS", 15)
