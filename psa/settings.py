"""Django settings, read from the environment with embedded defaults.

Embedded mode (no variables set): SQLite file under ``var/``, django-q2 on the ORM broker,
console email, DEBUG on. Production sets ``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG=false``,
``DJANGO_ALLOWED_HOSTS``, ``DATABASE_URL`` and optionally ``REDIS_URL`` (see README).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from psa.environment import (
    env_bool,
    env_header_value,
    env_int,
    env_list,
    env_meta_key,
    env_networks,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PSA_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false")
    # Development only: a fixed, obviously-insecure key so sessions survive restarts.
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "django_q",
    "psa.audit",
    "psa.resources",
    "psa.crm",
    "psa.scheduling",
    "psa.extensions",
    "psa.demo",
    "exchange_ext",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The browser's language (Accept-Language, or the language cookie the header's switcher
    # sets); a signed-in user's stored choice overrides it below, once the user is known.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "psa.i18n.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # request.htmx: a view answers an htmx request (live run progress) with a fragment.
    "django_htmx.middleware.HtmxMiddleware",
    # An htmx request answered with a redirect (an expired session) loads the page instead.
    "psa.htmx_redirects.HtmxRedirectMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "psa.urls"
WSGI_APPLICATION = "psa.wsgi.application"

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
                "psa.extensions.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'psa.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server and worker share the file. WAL lets readers run beside the one writer;
    # IMMEDIATE transactions take the write lock up front, because a deferred transaction that
    # upgrades from read to write fails with "database is locked" at once, busy timeout or not.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "calendar"
LOGOUT_REDIRECT_URL = "login"

# Languages (docs/i18n.md). "en" is international English: 24-hour clock, day before month;
# "en-us" the US formats. PSA_LANGUAGE is the installation default: the language of pages for
# a browser that asks for none we have, and of emails and Exchange item text for people who
# never chose one.
LANGUAGES = [
    ("en", "English"),
    ("en-us", "English (US)"),
    ("de", "Deutsch"),
    ("ja", "日本語"),
    ("zh-hans", "简体中文"),
]
PSA_LANGUAGE = env_str("PSA_LANGUAGE", "en").strip().lower()
if PSA_LANGUAGE not in {code for code, _name in LANGUAGES}:
    raise ImproperlyConfigured(
        f"PSA_LANGUAGE must be one of {', '.join(code for code, _name in LANGUAGES)},"
        f" not {PSA_LANGUAGE!r}"
    )
LANGUAGE_CODE = PSA_LANGUAGE
LOCALE_PATHS = [BASE_DIR / "locale"]
# Date, time and number formats per language; ours override Django's where SPEC §1 differs
# (English: 24-hour, day-month).
FORMAT_MODULE_PATH = ["psa.formats"]
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_SECURE = not DEBUG
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
TIME_ZONE = "UTC"  # storage and server time; each Resource has its own display time zone
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
X_FRAME_OPTIONS = "DENY"

# Production HTTPS (README, "Production deployment"); `check --deploy` passes with the defaults.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# A load balancer's health check speaks plain HTTP to the server and must not get a redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$"]
SECURE_PROXY_SSL_HEADER = env_header_value("DJANGO_SECURE_PROXY_SSL_HEADER")
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
# The PSA's own host name and the names below it; the parent domain is not affected.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Preloading commits the whole registrable domain to HTTPS in every browser, for months, and is
# the domain owner's decision, not the application's: off unless asked for, and its reminder
# (security.W021) silenced. Every other deployment check stays on.
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Login throttling (django-axes): a login (user name) from one client address is locked for
# AXES_COOLOFF_TIME after AXES_FAILURE_LIMIT wrong passwords; administrators see and lift locks
# in the Django admin ("Access attempts") or with `manage.py axes_reset`.
AXES_FAILURE_LIMIT = 10
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Behind a proxy, the request.META key of the header carrying the client's address (e.g.
# HTTP_X_FORWARDED_FOR). Unset: the connection's own address; a header is never trusted blindly.
CLIENT_IP_HEADER = env_meta_key("DJANGO_CLIENT_IP_HEADER")
AXES_CLIENT_IP_CALLABLE = "psa.client_address.client_address"

# Operators' endpoints (README, "Monitoring"). /metrics answers a request carrying
# "Authorization: Bearer <PSA_METRICS_TOKEN>" or coming from an address in
# PSA_METRICS_ALLOWED_IPS (addresses or CIDR networks, the client address as login throttling
# sees it); with neither set it does not exist (404). /healthz is open (load balancers).
PSA_METRICS_TOKEN = env_str("PSA_METRICS_TOKEN").strip()
if PSA_METRICS_TOKEN and (len(PSA_METRICS_TOKEN) < 32 or len(PSA_METRICS_TOKEN.split()) > 1):
    raise ImproperlyConfigured(
        "PSA_METRICS_TOKEN must be at least 32 characters without spaces "
        "(e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    )
PSA_METRICS_ALLOWED_IPS = env_networks("PSA_METRICS_ALLOWED_IPS")

# Email: console by default; Django's standard variables configure SMTP in production.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "PSA <psa@localhost>")

# Deep links ("Open in PSA") in items exported to Exchange.
PSA_BASE_URL = env_str("PSA_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

# Networks the Exchange server's (and Graph's) host names may resolve into although they are
# loopback, link-local, unspecified or multicast (README, "Where the extension connects").
# Empty by default; the demo and the tests list loopback for the local sandbox.
EXCHANGE_ALLOWED_NETWORKS = env_networks("EXCHANGE_ALLOWED_NETWORKS")

# django-q2: ORM broker by default; REDIS_URL switches to Redis with no code change.
# catch_up=False on schedules (set where schedules are created) keeps a stopped cluster from
# replaying every missed run on start. timeout < retry so a slow task is not redelivered while
# it still runs.
REDIS_URL = env_str("REDIS_URL")
Q_CLUSTER: dict[str, object] = {
    "name": "psa",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 600),
    "retry": env_int("Q_RETRY", 900),
    "max_attempts": 1,
    "catch_up": False,
    # Successful tasks are not stored: every sync records its own SyncRun, and django-q2's
    # pruning of stored successes locked and loaded every stored row (1,000, with their pickled
    # arguments) after each task: most of a quiet run's CPU (docs/performance.md). Failures
    # are still stored (Django admin, "Failed tasks").
    "save_limit": -1,
    "ack_failures": True,
    "poll": 1,
    "label": "Background tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# No secret in any log line (SPEC §8; psa/log_redaction.py): every handler redacts what it
# writes, whichever library logged it. Django's own loggers get no handlers of their own (theirs
# would not redact): their records reach the root's. The chattiest libraries stay above DEBUG
# whatever LOG_LEVEL says (they log tokens, secrets, Authorization headers and whole bodies).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "psa.log_redaction.RedactSecrets"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"level": "INFO"},
        "exchangelib": {"level": "INFO"},
        "requests_oauthlib": {"level": "INFO"},
        "oauthlib": {"level": "INFO"},
        "msal": {"level": "INFO"},
        "urllib3": {"level": "INFO"},
        "django.db.backends": {"level": "INFO"},
        # django-axes: failures and lockouts are warnings; its per-attempt chatter is INFO.
        "axes": {"level": "WARNING"},
    },
}
