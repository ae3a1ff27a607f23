"""Settings come from the environment; with nothing set the app runs embedded.

Embedded default: SQLite in ``var/``, a Celery broker on the filesystem (no server), tasks
run by a separate worker process. Production sets DATABASE_URL, CELERY_BROKER_URL,
SECRET_KEY, FIELD_ENCRYPTION_KEY, ALLOWED_HOSTS (and leaves DEBUG off).
"""

import os
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MAILFERRY_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def envbool(name, default=False):
    return os.environ.get(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


def envint(name, default):
    return int(os.environ.get(name, default))


def envlist(name, default=""):
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


def _local_secret(filename):
    """A per-checkout random secret for the embedded default, kept in var/ (never in git)."""
    path = VAR_DIR / filename
    if not path.exists():
        from cryptography.fernet import Fernet

        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = envbool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or _local_secret("secret_key")
# Fernet key (urlsafe base64, 32 bytes) for tenant secrets at rest. Comma-separate several keys to
# rotate: the first encrypts, all decrypt.
FIELD_ENCRYPTION_KEY = os.environ.get("FIELD_ENCRYPTION_KEY") or _local_secret("field_key")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "accounts",
    "projects",
    "mailboxes",
    "dnscheck",
    "schedules",
    "notices",
    "audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a lockout flagged during authenticate() into its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "migrator.urls"
WSGI_APPLICATION = "migrator.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'mailferry.sqlite3'}",
        conn_max_age=envint("CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The worker and the web server write the same file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not memory, so that worker processes started by tests share the test database;
    # one per test run, so that two runs side by side do not clobber each other.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes): LOGIN_FAILURE_LIMIT wrong passwords for one username from one
# address lock that pair out for LOGIN_COOLOFF_MINUTES, even with the right password. Username
# and address together, so that guessing a consultant's username from elsewhere cannot lock them
# out; the app form and the admin form count together.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Log who was locked out and from where (an operator needs both to unlock); axes always masks
# the password.
AXES_SENSITIVE_PARAMETERS = []
AXES_LOCKOUT_CALLABLE = "accounts.throttling.locked_out"
AXES_CLIENT_IP_CALLABLE = "accounts.throttling.client_ip"
# Two-factor (django-otp, TOTP): a user who has set up a device is always asked for its code;
# TWO_FACTOR_REQUIRED makes everyone set one up before using the app. Each wrong code doubles the
# wait before the next try (OTP_TOTP_THROTTLE_FACTOR seconds, then twice that, ...).
TWO_FACTOR_REQUIRED = envbool("TWO_FACTOR_REQUIRED", False)
OTP_TOTP_ISSUER = "mailferry"
OTP_TOTP_THROTTLE_FACTOR = 1

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and envbool("STATIC_MANIFEST", True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Security: secure by default once served over HTTPS (production sets SECURE_SSL_REDIRECT=1).
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG and SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if envbool("BEHIND_TLS_PROXY", False) else None
)
SECURE_CONTENT_TYPE_NOSNIFF = True
# The audit log takes the client address from X-Forwarded-For only behind a proxy that sets it.
AUDIT_TRUST_X_FORWARDED_FOR = envbool("TRUST_X_FORWARDED_FOR", False)
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Celery. Embedded default: a filesystem broker that needs no server. Work survives a killed
# worker because FolderJob leases in the database, not broker redelivery, drive resumption.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if os.environ.get("PYTEST_VERSION"):
    # Each test run gets its own broker folder, so worker processes of two runs (or of a
    # `make run` beside them) never take each other's tasks; workers a test starts inherit it.
    os.environ.setdefault("MAILFERRY_BROKER_DIR", tempfile.mkdtemp(prefix="mailferry-broker-"))
_BROKER_DIR = Path(os.environ.get("MAILFERRY_BROKER_DIR") or VAR_DIR / "broker")
if CELERY_BROKER_URL.startswith("filesystem://"):
    (_BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR),
        "data_folder_out": str(_BROKER_DIR),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
else:
    # Must exceed the longest task (a batch is bounded to well under a minute).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 600)
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Two queues: "copies" (planning, copying, verifying, the sweeps) and "checks" (connection and
# login tests, discovery, DNS checks), which wait on servers that may never answer. `make run`
# and compose give each its own worker, so a hanging test never holds a copy's slot; a worker
# started without -Q consumes both.
CELERY_TASK_DEFAULT_QUEUE = "copies"
CELERY_TASK_QUEUES = {"copies": {}, "checks": {}}
CELERY_TASK_ROUTES = {
    name: {"queue": "checks"}
    for name in (
        "projects.tasks.check_tenant",
        "mailboxes.tasks.check_mailbox_logins",
        "mailboxes.tasks.discover_mailboxes",
        "dnscheck.tasks.*",
        # Sending mail waits on a mail server, and must go on while copy workers are down.
        "notices.tasks.*",
    )
}
# Past the soft limit a task gets SoftTimeLimitExceeded and ends with a message; the hard
# limit kills a task that ignored it. Both stay below the Redis visibility timeout.
CELERY_TASK_SOFT_TIME_LIMIT = envint("TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = envint("TASK_TIME_LIMIT", 360)
# A worker waits out a broker outage of any length instead of giving up after 100 attempts.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# How often beat starts due schedules and checks run windows (README, "Schedules").
SCHEDULES_TICK_SECONDS = envint("SCHEDULES_TICK_SECONDS", 60)

# How many connections the workers may hold open to one tenant at once.
TENANT_CONNECTION_LIMIT = envint("TENANT_CONNECTION_LIMIT", 4)
# The copy engine: a batch is at most this many items or bytes; a task copies batches for about
# COPY_TASK_SECONDS, then queues the rest; a worker silent for COPY_LEASE_SECONDS is presumed dead.
COPY_BATCH_ITEMS = envint("COPY_BATCH_ITEMS", 200)
COPY_BATCH_BYTES = envint("COPY_BATCH_BYTES", 16 * 1024 * 1024)
COPY_TASK_SECONDS = envint("COPY_TASK_SECONDS", 20)
COPY_LEASE_SECONDS = envint("COPY_LEASE_SECONDS", 90)
COPY_QUEUE_GRACE_SECONDS = envint("COPY_QUEUE_GRACE_SECONDS", 600)
# How often beat sweeps for expired leases and for work saved while the broker was unreachable.
COPY_SWEEP_SECONDS = envint("COPY_SWEEP_SECONDS", 60)
# Copy workers write a heartbeat this often; when none has for WORKER_SILENT_SECONDS while
# mailboxes are running, the dashboard and project pages say that the work is waiting.
WORKER_HEARTBEAT_SECONDS = envint("WORKER_HEARTBEAT_SECONDS", 20)
WORKER_SILENT_SECONDS = envint("WORKER_SILENT_SECONDS", 60)
COPY_FOLDERS_IN_PARALLEL = envint("COPY_FOLDERS_IN_PARALLEL", 2)
COPY_MAX_RETRIES = envint("COPY_MAX_RETRIES", 5)
COPY_RETRY_BASE_SECONDS = float(os.environ.get("COPY_RETRY_BASE_SECONDS", 5))
COPY_RETRY_MAX_SECONDS = float(os.environ.get("COPY_RETRY_MAX_SECONDS", 600))

# Where tenants' connectors may go (mailboxes/connectors/reach.py). Tests keep their maildirs
# in the system's temporary folder and run every server on loopback.
_TESTING = bool(os.environ.get("PYTEST_VERSION"))
MAILDIR_ROOT = os.environ.get("MAILDIR_ROOT", "")
if not MAILDIR_ROOT:  # the default exists from the start, so a first maildir tenant works
    MAILDIR_ROOT = tempfile.gettempdir() if _TESTING else str(VAR_DIR / "maildir")
    Path(MAILDIR_ROOT).mkdir(exist_ok=True)
ALLOW_LOCAL_ENDPOINTS = envbool("ALLOW_LOCAL_ENDPOINTS", _TESTING)
# Refused as endpoints like loopback: the database, the broker, and any more listed.
SERVICE_HOSTS = [
    host
    for host in (
        DATABASES["default"].get("HOST"),
        urlsplit(CELERY_BROKER_URL).hostname,
        *envlist("SERVICE_HOSTS"),
    )
    if host
]

# DNS checks: resolvers asked besides each zone's own nameservers ("host:port", comma-separated),
# and the seconds one server may take to answer one question.
DNSCHECK_RESOLVERS = envlist("DNSCHECK_RESOLVERS", "1.1.1.1:53,8.8.8.8:53,9.9.9.9:53")
DNSCHECK_TIMEOUT = float(os.environ.get("DNSCHECK_TIMEOUT", "3"))

# Days a team invitation's sign-up link works (projects.Invitation).
INVITE_EXPIRY_DAYS = envint("INVITE_EXPIRY_DAYS", 7)

# Mail to end users and consultants (notices/), with Django's own setting names. Without
# EMAIL_HOST nothing is sent: every message is kept in the outbox (notices.Notice).
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = envint("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", bool(EMAIL_HOST))
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "mailferry@localhost")
# Where the app is reached, for the end users' progress links in messages the worker sends.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # axes: lockouts and failures are warnings (username, address, never the password); its
    # per-request info lines are noise.
    "loggers": {"exchangelib": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
