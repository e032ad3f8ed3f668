"""Choreoscope settings: every knob is an environment variable, read here and only here.

Nothing set gives the embedded default (SQLite in WAL mode, in-memory channel layer, tasks
run in-process with a built-in scheduler). ``DATABASE_URL`` switches to PostgreSQL,
``REDIS_URL`` to Redis for the channel layer, the cache and Celery (separate worker and beat
processes), and ``CHOREOSCOPE_ENV=production`` to safe production defaults. The README lists
every setting.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from choreoscope.env import (
    check_redis_url,
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_required,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

ENVIRONMENT = env_choice("CHOREOSCOPE_ENV", "development", ("development", "production", "test"))
PRODUCTION = ENVIRONMENT == "production"

# --- Core -------------------------------------------------------------------------------------

if PRODUCTION:
    SECRET_KEY = env_required("SECRET_KEY", why="production needs a long random secret (SECRET_KEY or SECRET_KEY_FILE).")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set in production (comma-separated host names).")
else:
    SECRET_KEY = env_str("SECRET_KEY") or "choreoscope-embedded-default-not-for-production"
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

DEBUG = env_bool("DEBUG", default=False)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

DATA_DIR = Path(env_str("CHOREOSCOPE_DATA_DIR") or BASE_DIR / "var")

INSTALLED_APPS = [
    "dashboard.admin_apps.ChoreoscopeAdminConfig",  # django.contrib.admin with the throttled log-in
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "tokens",
    "tracing",
    "collectors",
    "alerts",
    "dashboard",
]
# The demo shop is a plug-in (its models, commands and the overview's faults panel); production
# does not install it.
DEMO_INSTALLED = not PRODUCTION
if DEMO_INSTALLED:
    INSTALLED_APPS.append("demo")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "choreoscope.static_files.AsyncWhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dashboard.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "choreoscope.urls"
ASGI_APPLICATION = "choreoscope.asgi.application"
WSGI_APPLICATION = "choreoscope.wsgi.application"

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
                "dashboard.context.navigation",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    SQLITE_PATH = Path(env_str("SQLITE_PATH") or DATA_DIR / "choreoscope.sqlite3")
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            # WAL lets readers (pages, the API) run while a request writes; IMMEDIATE makes a
            # writer take the lock at BEGIN, so two writers queue instead of deadlocking.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Event-bus taps (`manage.py tap rabbitmq|nats`) ----------------------------------------------

RABBITMQ_URL = env_url("CHOREOSCOPE_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/", ("amqp", "amqps"))
NATS_URL = env_url("CHOREOSCOPE_NATS_URL", "nats://127.0.0.1:4222", ("nats", "tls"))

# --- Redis: channel layer, cache, Celery ------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
# Namespaces this installation's keys, channel groups and Celery queue, so that several
# installations (or test runs) can share one Redis.
REDIS_PREFIX = env_str("CHOREOSCOPE_REDIS_PREFIX") or "choreoscope"
CELERY_TASK_DEFAULT_QUEUE = REDIS_PREFIX
# Each web process waits for its sockets' next channel-layer message with one blocking Redis read
# of up to this many seconds, again and again. redis-py gives up on any read after its socket
# timeout (5 s by default): were that not longer than the wait, every quiet wait would end in
# "Timeout reading from …" and drop the process's open sockets without a close frame. So reads
# may take the wait plus a margin; a Redis that stops answering is still noticed after that, and
# a vanished peer sooner by TCP keepalive.
CHANNEL_LAYER_WAIT_SECONDS = env_float("CHOREOSCOPE_CHANNEL_LAYER_WAIT_SECONDS", 5.0, minimum=0.1)
CHANNEL_LAYER_CONNECTION = {
    "socket_timeout": CHANNEL_LAYER_WAIT_SECONDS + 10.0,
    "socket_connect_timeout": 5.0,
    "socket_keepalive": True,
}
if REDIS_URL:
    check_redis_url(REDIS_URL)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "dashboard.broadcast.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, **CHANNEL_LAYER_CONNECTION}],
                "prefix": f"{REDIS_PREFIX}:asgi",
                "capacity": 1000,
                "expiry": 30,
                "blocking_wait": CHANNEL_LAYER_WAIT_SECONDS,
            },
        }
    }
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": REDIS_PREFIX}
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://localhost/"  # never used (tasks run eagerly); a host keeps kombu quiet
    # The embedded default runs the very same task functions, in-process.
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Whether the web process runs the periodic jobs itself (the embedded default) or Celery beat does.
IN_PROCESS_SCHEDULER = env_bool("CHOREOSCOPE_IN_PROCESS_SCHEDULER", default=not REDIS_URL)

# --- Auth, sessions, security -------------------------------------------------------------------

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Log-in throttling (site and admin): failed log-ins allowed per account and per client address
# within the window, then a lock-out that doubles each time it recurs within a day (up to a day).
LOGIN_FAILURES_PER_ACCOUNT = env_int("CHOREOSCOPE_LOGIN_FAILURES", 5, minimum=1)
LOGIN_FAILURES_PER_ADDRESS = env_int("CHOREOSCOPE_LOGIN_ADDRESS_FAILURES", 20, minimum=1)
LOGIN_WINDOW_SECONDS = env_int("CHOREOSCOPE_LOGIN_WINDOW_SECONDS", 900, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("CHOREOSCOPE_LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Proxies whose X-Forwarded-For (and -Proto) the server believes, e.g. 10.0.0.5 or 10.0.0.0/8;
# empty: the client address is the connection's peer, whatever headers it sends.
TRUSTED_PROXIES = env_networks("CHOREOSCOPE_TRUSTED_PROXIES")

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Ingestion endpoints (OTLP, CloudEvents) and health probes are reached over plain HTTP inside a
# cluster; exempting them from the HTTPS redirect keeps exporters from following a 301.
SECURE_REDIRECT_EXEMPT = [r"^v1/", r"^healthz$", r"^metrics$"]

# ``optional`` accepts ingestion without a token (the embedded default); ``required`` demands an
# ingest-scoped token in ``Authorization: Bearer``.
INGEST_AUTH = env_choice("CHOREOSCOPE_INGEST_AUTH", "required" if PRODUCTION else "optional", ("optional", "required"))
# ``/metrics`` is open by default (Prometheus scrapes without a session); set to require a read token.
METRICS_AUTH = env_choice("CHOREOSCOPE_METRICS_AUTH", "optional", ("optional", "required"))
# Several processes (web workers, Celery workers, taps) on one machine keep their counters in files
# in this directory, and a scrape of any web process adds them up. prometheus_client reads the same
# variable itself when it is imported, so it is the library's name, not a CHOREOSCOPE_ one.
METRICS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR") or ""
if METRICS_MULTIPROC_DIR and not Path(METRICS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR={METRICS_MULTIPROC_DIR!r} is not an existing directory.")

# --- Ingestion ---------------------------------------------------------------------------------

# Largest request body accepted, counted after decompression (OTLP and CloudEvents).
MAX_BODY_BYTES = env_int("CHOREOSCOPE_MAX_BODY_BYTES", 64 * 1024 * 1024, minimum=1024)
# Bound on stored-but-not-yet-correlated observations; past it, ingestion answers 429.
MAX_PENDING = env_int("CHOREOSCOPE_MAX_PENDING", 200_000, minimum=1)
# Seconds a client is told to wait (Retry-After) when ingestion is overloaded or unavailable.
RETRY_AFTER_SECONDS = env_int("CHOREOSCOPE_RETRY_AFTER_SECONDS", 5, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES

# Bounds on the work one ingestion request can cause (collectors/limits.py applies them).
# Nesting of event data and attribute values; the API's JSON encoder stops at 255 levels in all.
MAX_DEPTH = env_int("CHOREOSCOPE_MAX_DEPTH", 32, minimum=1)
if MAX_DEPTH > 200:
    raise ImproperlyConfigured(f"CHOREOSCOPE_MAX_DEPTH={MAX_DEPTH} is above its maximum of 200.")
MAX_STRING_LENGTH = env_int("CHOREOSCOPE_MAX_STRING_LENGTH", 65_536, minimum=256)
# Per span (and per span event or link for attributes), as the OpenTelemetry SDKs' defaults.
MAX_ATTRIBUTES = env_int("CHOREOSCOPE_MAX_ATTRIBUTES", 128, minimum=1)
MAX_SPAN_EVENTS = env_int("CHOREOSCOPE_MAX_SPAN_EVENTS", 128, minimum=0)
MAX_SPAN_LINKS = env_int("CHOREOSCOPE_MAX_SPAN_LINKS", 128, minimum=0)
MAX_ITEMS_PER_REQUEST = env_int("CHOREOSCOPE_MAX_ITEMS_PER_REQUEST", 100_000, minimum=1)
# Every protobuf message of an OTLP request (attributes, events, links and values included): each
# costs 60-90 bytes parsed however small its encoding, so this bounds a request's parsed size.
MAX_ELEMENTS_PER_REQUEST = env_int("CHOREOSCOPE_MAX_ELEMENTS_PER_REQUEST", 2_000_000, minimum=1000)
MAX_PROBLEMS = env_int("CHOREOSCOPE_MAX_PROBLEMS", 20, minimum=1)

# --- Correlation, flows, retention ----------------------------------------------------------------

FLOWS_FILE = env_str("CHOREOSCOPE_FLOWS")
# AsyncAPI 3 documents, one per application: comma-separated files or globs (tracing.contracts).
ASYNCAPI_FILES = env_list("CHOREOSCOPE_ASYNCAPI", [])
# Most flows one OCEL 2.0 export (GET /api/flows/export.ocel.json) writes.
OCEL_EXPORT_MAX_FLOWS = env_int("CHOREOSCOPE_OCEL_EXPORT_MAX_FLOWS", 5_000, minimum=1)
RETENTION_DAYS = env_int("CHOREOSCOPE_RETENTION_DAYS", 7, minimum=1)
# Plain OTLP log records kept per span, shown in the flow page's inspector (0 keeps none).
SPAN_LOGS_PER_SPAN = env_int("CHOREOSCOPE_SPAN_LOGS_PER_SPAN", 50, minimum=0)
# Most observations one correlation transaction takes. A batch's statements cost nearly the same
# for 2,000 rows as for 5,000, so a backlog drains faster in big batches (``bench correlation``);
# the embedded mode correlates in the committing request's thread, where smaller batches keep
# responses quick.
CORRELATION_BATCH_SIZE = env_int("CHOREOSCOPE_CORRELATION_BATCH", 5000 if DATABASE_URL else 2000, minimum=1)
SWEEP_SECONDS = env_int("CHOREOSCOPE_SWEEP_SECONDS", 30, minimum=1)

# --- Stuck detection and alerts ---------------------------------------------------------------

MODEL_REFRESH_SECONDS = env_int("CHOREOSCOPE_MODEL_REFRESH_SECONDS", 60, minimum=1)
QUIET_SECONDS = env_int("CHOREOSCOPE_QUIET_SECONDS", 300, minimum=1)
MODEL_MIN_FLOWS = env_int("CHOREOSCOPE_MODEL_MIN_FLOWS", 20, minimum=1)
EXPECT_SHARE = env_float("CHOREOSCOPE_EXPECT_SHARE", 0.95, minimum=0.0)
STUCK_FACTOR = env_float("CHOREOSCOPE_STUCK_FACTOR", 3.0, minimum=1.0)
STUCK_FLOOR_SECONDS = env_int("CHOREOSCOPE_STUCK_FLOOR_SECONDS", 30, minimum=0)
STUCK_SCAN_SECONDS = env_int("CHOREOSCOPE_STUCK_SCAN_SECONDS", 10, minimum=1)
# Shared secret for the HMAC-SHA256 signature of webhook notifications.
WEBHOOK_SECRET = env_str("CHOREOSCOPE_WEBHOOK_SECRET") or SECRET_KEY

# --- Live updates (WebSockets) -----------------------------------------------------------------

# Shortest time between two updates one open page receives: the first change after a quiet
# spell goes out at once, a burst after it is merged into one update per interval.
LIVE_UPDATE_SECONDS = env_float("CHOREOSCOPE_LIVE_UPDATE_SECONDS", 0.1, minimum=0.0)
# New rows one stream page lists a second, at most; above it the page lists a sample (the
# newest) and says how many matching rows it left out.
LIVE_STREAM_ROWS_PER_SECOND = env_int("CHOREOSCOPE_LIVE_STREAM_ROWS_PER_SECOND", 600, minimum=1)

# --- Pages -------------------------------------------------------------------------------------

# A link from every span to its trace in a tracing UI, e.g. https://jaeger.example.com/trace/{trace_id};
# empty shows the trace id (copyable) without a link.
TRACE_URL = env_str("CHOREOSCOPE_TRACE_URL") or ""

# --- E-mail (alert notifications) ---------------------------------------------------------------

EMAIL_BACKEND = env_str("EMAIL_BACKEND") or (
    "django.core.mail.backends.smtp.EmailBackend" if env_str("EMAIL_HOST") else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = env_str("EMAIL_HOST") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "choreoscope@localhost"

# --- Static files, i18n, logging ------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "celery": {"level": "WARNING"},
        "uvicorn.access": {"level": "WARNING"},
        # pika tells every connection's steps at INFO, and a passive declare of a missing queue (how
        # AMQP asks whether it exists) at WARNING; failures reach the callers as exceptions.
        "pika": {"level": "ERROR"},
    },
}

# --- Serving (make run / manage.py serve) -----------------------------------------------------

BIND_HOST = env_str("HOST") or "127.0.0.1"
PORT = env_int("PORT", 8000, minimum=1)
OTLP_PORT = env_int("OTLP_PORT", 4318, minimum=0)
# OTLP/gRPC (traces and logs) on 4317, the OpenTelemetry SDKs' and Collectors' default; 0 disables.
OTLP_GRPC_PORT = env_int("OTLP_GRPC_PORT", 4317, minimum=0)
# What starts the OTLP/gRPC server, named as a string as ASGI_APPLICATION is: the serve command
# belongs to the dashboard, which does not import the collectors.
OTLP_GRPC_SERVER = "collectors.otlp_grpc.start_otlp_grpc"
# Server processes for `manage.py serve` (above 1 needs REDIS_URL).
WEB_CONCURRENCY = env_int("WEB_CONCURRENCY", 1, minimum=1)
# Start the demo shop beside the server; without the demo app (production) there is none to start.
DEMO = env_bool("DEMO", default=False) and DEMO_INSTALLED
# The demo shop's event bus: Redis Streams (needs REDIS_URL), RabbitMQ (CHOREOSCOPE_RABBITMQ_URL)
# or in-process; Choreoscope reads the first two through the matching `manage.py tap`.
DEMO_BUS = env_choice("DEMO_BUS", "redis" if REDIS_URL else "in-process", ("in-process", "redis", "rabbitmq"))

# --- Queue lag (the service map and /metrics) ----------------------------------------------------

# The destinations whose consumers the web process watches: Redis streams and NATS JetStream
# streams (every consumer group or consumer of each), RabbitMQ queues (QUEUE or SERVICE=QUEUE).
WATCH_REDIS_STREAMS = env_list("CHOREOSCOPE_WATCH_REDIS_STREAMS", [])
WATCH_RABBITMQ_QUEUES = env_list("CHOREOSCOPE_WATCH_RABBITMQ_QUEUES", [])
WATCH_NATS_STREAMS = env_list("CHOREOSCOPE_WATCH_NATS_STREAMS", [])
# With the demo shop beside the server on a tapped bus, and nothing named to watch, its own
# destinations are watched, by the names demo/bus.py gives them: a stream per topic, a queue per
# consuming service and the tap's (tests/demo checks that these lists match the shop's).
DEMO_TOPICS = ("orders", "notifications", "shipments", "rewards", "risk", "analytics")
DEMO_CONSUMERS = ("email", "warehouse", "rewards", "fraud-check", "analytics", "choreoscope")
if DEMO and not (WATCH_REDIS_STREAMS or WATCH_RABBITMQ_QUEUES or WATCH_NATS_STREAMS):
    if DEMO_BUS == "redis":
        WATCH_REDIS_STREAMS = [f"{REDIS_PREFIX}:shop:{topic}" for topic in DEMO_TOPICS]
    elif DEMO_BUS == "rabbitmq":
        WATCH_RABBITMQ_QUEUES = [f"{service}={REDIS_PREFIX}.shop.{service}" for service in DEMO_CONSUMERS]

if os.environ.get("CHOREOSCOPE_TEST_DATABASE_NAME") and DATABASE_URL:
    DATABASES["default"]["TEST"] = {"NAME": os.environ["CHOREOSCOPE_TEST_DATABASE_NAME"]}
