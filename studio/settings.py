"""Studio's one settings module. Every value comes from the environment (see .env.example) with
defaults that make `make run` work offline: SQLite, an embedded broker and the sandbox engine."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("STUDIO_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-local-only-key-change-me-in-production")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
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
    "accounts",
    "generations",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
RUNNING_TESTS = bool(os.environ.get("PYTEST_VERSION"))
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
STABILITY_DEFAULT_ENGINE = os.environ.get("STABILITY_DEFAULT_ENGINE", "stable-diffusion-xl-1024-v1-0")
STABILITY_BALANCE_CACHE_SECONDS = int(os.environ.get("STABILITY_BALANCE_CACHE_SECONDS", "30"))
STABILITY_ENGINES_CACHE_SECONDS = int(os.environ.get("STABILITY_ENGINES_CACHE_SECONDS", "600"))

# The sandbox: moderation words and fault injection (see README, "The sandbox").
SANDBOX_BANNED_WORDS = env_list("SANDBOX_BANNED_WORDS", "contraband")
SANDBOX_FLAGGED_WORDS = env_list("SANDBOX_FLAGGED_WORDS", "lurid")
SANDBOX_FAULTS = os.environ.get("SANDBOX_FAULTS", "")
SANDBOX_HANG_SECONDS = float(os.environ.get("SANDBOX_HANG_SECONDS", "120"))
SANDBOX_RATE_LIMIT = int(os.environ.get("SANDBOX_RATE_LIMIT", "150"))
SANDBOX_RATE_WINDOW_SECONDS = 10
SANDBOX_RATE_LOCKOUT_SECONDS = 60

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"
    SECURE_CONTENT_TYPE_NOSNIFF = True
