"""Settings for the AI computing network, read from the environment (see README.md, "Configuration").

With no environment at all the product runs on the embedded defaults: an embedded PostgreSQL in `.data/`, Celery
tasks run eagerly after commit, and an in-memory channel layer. `DJANGO_ENV=production` turns on every deployment
safeguard and requires a real `SECRET_KEY`, `ALLOWED_HOSTS`, `DATABASE_URL` and `REDIS_URL`.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
import dj_email_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from marketplace.env import env_bool, env_decimal, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR") or BASE_DIR / ".data")

DJANGO_ENV = env_str("DJANGO_ENV", "development")
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be 'development' or 'production', got {DJANGO_ENV!r}")
PRODUCTION = DJANGO_ENV == "production"

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when DJANGO_ENV=production")

_DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production-0c1f9a7e"  # noqa: S105 (development default)
SECRET_KEY = env_str("SECRET_KEY") or ("" if PRODUCTION else _DEV_SECRET_KEY)
if PRODUCTION and (len(SECRET_KEY) < 50 or SECRET_KEY == _DEV_SECRET_KEY):
    raise ImproperlyConfigured("SECRET_KEY must be set to a random value of at least 50 characters in production")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the host names the product is served under")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"CSRF_TRUSTED_ORIGINS entries must start with http:// or https://: {_origin!r}")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # FORM_RENDERER = TemplatesSetting looks widget and form templates up through TEMPLATES: without this app
    # Django's own form templates are not found and every form (the admin's included) fails to render.
    "django.forms",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "marketplace",
    "billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "marketplace.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: it needs only the session's user. A synchronous middleware innermost also keeps the whole chain
    # synchronous under Django's ASGI handler (HTTP is served by marketplace/http.py, synchronous throughout).
    "accounts.middleware.ActiveOrganizationMiddleware",
]

ROOT_URLCONF = "marketplace.urls"
ASGI_APPLICATION = "marketplace.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.acting_organization",
            ],
        },
    },
]
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

# --- Database: PostgreSQL only -------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", schemes=("postgres", "postgresql"))
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
elif PRODUCTION:
    raise ImproperlyConfigured("DATABASE_URL must be set in production (the embedded PostgreSQL is for development)")
else:
    from marketplace.embedded_db import embedded_database

    DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", **embedded_database(DATA_DIR)}}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# A connection pool per process (psycopg_pool): opening a PostgreSQL connection per request costs the database a
# backend start and the web process a handshake, which measured as a third of a usage upload's database time.
# Pooled connections are health-checked when taken. Forked children (Celery's prefork workers) drop the pool they
# inherit and open their own (marketplace/celery.py).
DATABASE_POOL = env_bool("DATABASE_POOL", default=True)
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 20)
if DATABASE_POOL_MAX_SIZE < 1:
    raise ImproperlyConfigured(f"DATABASE_POOL_MAX_SIZE must be at least 1, got {DATABASE_POOL_MAX_SIZE}")
if DATABASE_POOL:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not hold them as well
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_MAX_SIZE,
        "timeout": env_int("DATABASE_POOL_TIMEOUT_SECONDS", 30),
        "max_idle": 300,
    }
# HTTP requests run on this many threads per web process (marketplace/http.py), each holding at most one database
# connection while it serves a request: more threads than pooled connections would only wait for one. A few are
# enough for a process that is busy with Python (one runs at a time) and let slow calls (Stripe) overlap; many cost
# CPU in handing the interpreter lock around: 32 clients booking at once cost 8.5 ms of CPU per attempt on 4
# threads, 11 ms on 16 (docs/performance.md, scenario 3). For more throughput, run more processes.
WEB_THREADS = env_int("WEB_THREADS", 4)
if not 1 <= WEB_THREADS <= (DATABASE_POOL_MAX_SIZE if DATABASE_POOL else WEB_THREADS):
    raise ImproperlyConfigured(
        f"WEB_THREADS must be between 1 and DATABASE_POOL_MAX_SIZE ({DATABASE_POOL_MAX_SIZE}), got {WEB_THREADS}"
    )
if env_str("TEST_DATABASE_NAME"):
    # Lets two test runs on one server (a developer's and CI's) keep apart.
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker, channel layer, cache ---------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss"))
if PRODUCTION and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_URL must be set in production (Celery workers and WebSockets need it)")

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
    # channels_redis waits up to 5 s per blocking read for new messages, and redis-py 8 gives up reading a socket
    # after 5 s by default: an idle WebSocket's receive loop would die and lose the events sent meanwhile. A read
    # timeout well above the blocking wait keeps idle sockets alive and still notices a Redis that hangs.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        }
    }
    # Fails open when Redis is unreachable (marketplace/cache.py): pages and the API keep serving, logged.
    CACHES = {
        "default": {
            "BACKEND": "marketplace.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 2},
        }
    }
else:
    # No broker: tasks run in-process. Callers still queue them with transaction.on_commit, so they run after
    # the commit exactly as a worker would see them.
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "bookings-advance": {"task": "marketplace.bookings_advance", "schedule": 60.0},
    # Tasks whose publish after commit failed (Redis was down) are sent from the outbox (marketplace/outbox.py).
    "outbox-relay": {"task": "marketplace.outbox_relay", "schedule": 30.0},
    # Each run closes whatever has become due (a month that ended the grace ago) and finalizes invoices whose
    # review window passed: hourly is enough, and a missed run is caught up by the next.
    "billing-periods-close": {"task": "billing.periods_close_due", "schedule": 3600.0},
    "billing-invoices-finalize": {"task": "billing.invoices_finalize_due", "schedule": 600.0},
    "billing-grants-expire": {"task": "billing.grants_expire", "schedule": 3600.0},
    # Payment reminders: hourly, so a reminder goes out within the hour its stage is reached; each is sent once.
    "billing-dunning": {"task": "billing.dunning_run", "schedule": 3600.0},
    # Webhook events whose task was lost (a worker killed, a broker restart) are queued again; Stripe's balance
    # history is imported hourly so that fees and payouts are booked without anyone pressing Import (both do
    # nothing while Stripe is not configured).
    "billing-stripe-events-redeliver": {"task": "billing.stripe_events_redeliver", "schedule": 300.0},
    "billing-stripe-import": {"task": "billing.stripe_import", "schedule": 3600.0},
}
BOOKING_APPROVAL_TTL_HOURS = env_int("BOOKING_APPROVAL_TTL_HOURS", 24)
AGENT_STALE_AFTER_SECONDS = env_int("AGENT_STALE_AFTER_SECONDS", 180)
AGENT_PROVISION_LEAD_MINUTES = env_int("AGENT_PROVISION_LEAD_MINUTES", 15)

# --- Auth ----------------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 3
INVITATION_TTL_DAYS = env_int("INVITATION_TTL_DAYS", 7)

# --- Internationalization ------------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

# --- Static files --------------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Development serves straight from the finders so that `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG

# Uploads (reimbursement payment proofs) are evidence of one organization's payments: no URL serves this folder;
# each file is sent only by a view that checks the organization asking (billing.views_vouchers), so MEDIA_URL
# stays unset.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or DATA_DIR / "media")

# --- E-mail --------------------------------------------------------------------------------------------------
EMAIL_URL = env_url("EMAIL_URL", schemes=("smtp", "smtps", "submission", "console", "file", "memory", "dummy"))
if EMAIL_URL:
    vars().update(dj_email_url.parse(EMAIL_URL))
else:
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
    EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
    EMAIL_PORT = env_int("EMAIL_PORT", 25)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "AI Computing Network <no-reply@computenet.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Payments and settlement ---------------------------------------------------------------------------------
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "") or ""
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "") or ""
STRIPE_API_BASE = env_url("STRIPE_API_BASE", schemes=("http", "https"))
STRIPE_ENABLED = bool(STRIPE_SECRET_KEY)
# The browser half of card payments: the publishable key and where stripe.js is loaded from (tests point it at
# localstripe's fake stripe.js, /js.stripe.com/v3/ on its server).
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY", "") or ""
STRIPE_JS_URL = env_url("STRIPE_JS_URL", schemes=("http", "https")) or "https://js.stripe.com/v3/"
# A webhook event whose handling failed is retried this many times (with backoff) before it stays `failed`.
STRIPE_EVENT_MAX_ATTEMPTS = env_int("STRIPE_EVENT_MAX_ATTEMPTS", 5)
PLATFORM_FEE_RATE = env_decimal("PLATFORM_FEE_RATE", "0.10", minimum="0", maximum="1")
# Prices are tax-inclusive; invoices show the VAT they contain at the issuer's rate.
INVOICE_VAT_RATE = env_decimal("INVOICE_VAT_RATE", "0.06", minimum="0", maximum="1")
# A closed period's invoices are drafts for this long (finance may finalize early or hold one), then finalized.
INVOICE_REVIEW_HOURS = env_int("INVOICE_REVIEW_HOURS", 48)
INVOICE_PAYMENT_TERMS_DAYS = env_int("INVOICE_PAYMENT_TERMS_DAYS", 30)
# The beat closes a month this long after it ended, so that agents' late uploads still land in it.
BILLING_CLOSE_GRACE_HOURS = env_int("BILLING_CLOSE_GRACE_HOURS", 24)
# The issuer printed on invoices, and the bank account consumers pay by transfer (对公转账).
PLATFORM_LEGAL_NAME = env_str("PLATFORM_LEGAL_NAME", "AI Computing Network Platform Co., Ltd.")
PLATFORM_TAX_ID = env_str("PLATFORM_TAX_ID", "91330100MA2DEMO00X")
PLATFORM_ADDRESS = env_str("PLATFORM_ADDRESS", "Hangzhou, Zhejiang, China")
PLATFORM_BANK_NAME = env_str("PLATFORM_BANK_NAME", "Bank of Hangzhou, Xixi branch")
PLATFORM_BANK_ACCOUNT = env_str("PLATFORM_BANK_ACCOUNT", "3301 0401 6000 0000 000")
# A payment within this much (in the currency's units) of what it pays counts as paying it; also the most finance
# may write off. Matching by amount looks this many days either side of a bank line's booking date.
RECONCILIATION_TOLERANCE = env_decimal("RECONCILIATION_TOLERANCE", "1.00", minimum="0")
RECONCILIATION_DATE_WINDOW_DAYS = env_int("RECONCILIATION_DATE_WINDOW_DAYS", 5)
# Dunning: a reminder this many days before an invoice is due, then 1, 14 and 30 days after.
DUNNING_REMINDER_DAYS_BEFORE = env_int("DUNNING_REMINDER_DAYS_BEFORE", 3)
for _name in (
    "INVOICE_REVIEW_HOURS",
    "INVOICE_PAYMENT_TERMS_DAYS",
    "BILLING_CLOSE_GRACE_HOURS",
    "RECONCILIATION_DATE_WINDOW_DAYS",
    "DUNNING_REMINDER_DAYS_BEFORE",
):
    if globals()[_name] < 0:
        raise ImproperlyConfigured(f"{_name} must not be negative, got {globals()[_name]}")

# --- API -----------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "accounts.authentication.OrganizationSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.ActsForOrganization"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["accounts.api_support.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "accounts.api_support.DefaultPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "accounts.api_support.OrganizationRateThrottle",
        "accounts.api_support.TokenScopeRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "120/min"),
        "organization": env_str("API_THROTTLE_ORGANIZATION", "6000/min"),
        # Per token (or per person) on the agent and inventory APIs, so that one runaway agent or script takes at
        # most half its organization's budget. An agent heartbeats, polls and uploads a few times a minute; the
        # agent rate leaves room for catching up after an outage at full speed (25 batches/s, docs/performance.md).
        "agent": env_str("API_THROTTLE_AGENT", "3000/min"),
        "inventory": env_str("API_THROTTLE_INVENTORY", "600/min"),
    },
    "EXCEPTION_HANDLER": "accounts.api_support.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AI Computing Network API",
    "DESCRIPTION": "Inventory, catalog, booking, agent and billing API (contract v1). Errors are "
    '`{"detail": "...", "code": "..."}`; machine clients authenticate with `Authorization: Bearer <token>`.',
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several components have a `status` field with different choices; name each set after its model.
    "ENUM_NAME_OVERRIDES": {"OfferingStatusEnum": "marketplace.models.OfferingStatus"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # Lists answering a page through accounts.api_support.paginated_schema document ?page= and its 404.
        "accounts.schema.document_pagination",
    ],
}
IDEMPOTENCY_KEY_TTL_HOURS = 24

# --- Security ------------------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# Guessing passwords: this many failed logins for one account, or from one address, within the window lock
# further attempts for the lockout (accounts.ratelimit). Counters live in the cache (Redis in production).
LOGIN_FAILURE_LIMIT_PER_ACCOUNT = env_int("LOGIN_FAILURE_LIMIT_PER_ACCOUNT", 5)
LOGIN_FAILURE_LIMIT_PER_IP = env_int("LOGIN_FAILURE_LIMIT_PER_IP", 20)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 15 * 60)
# Guessing API tokens: this many invalid, revoked or expired bearer tokens from one address lock it out.
API_AUTH_FAILURE_LIMIT = env_int("API_AUTH_FAILURE_LIMIT", 20)
API_AUTH_FAILURE_WINDOW_SECONDS = env_int("API_AUTH_FAILURE_WINDOW_SECONDS", 5 * 60)
API_AUTH_LOCKOUT_SECONDS = env_int("API_AUTH_LOCKOUT_SECONDS", 5 * 60)
for _name in (
    "LOGIN_FAILURE_LIMIT_PER_ACCOUNT",
    "LOGIN_FAILURE_LIMIT_PER_IP",
    "LOGIN_FAILURE_WINDOW_SECONDS",
    "LOGIN_LOCKOUT_SECONDS",
    "API_AUTH_FAILURE_LIMIT",
    "API_AUTH_FAILURE_WINDOW_SECONDS",
    "API_AUTH_LOCKOUT_SECONDS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, got {globals()[_name]}")
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Logging -------------------------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
    },
}
