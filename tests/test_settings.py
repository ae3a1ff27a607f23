"""Settings come from the environment with secure defaults."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_manage(*args, **env):
    # The browser tests set DJANGO_ALLOW_ASYNC_UNSAFE for Playwright; a deployment never would.
    ignored = ("DEBUG", "DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")
    base = {k: v for k, v in os.environ.items() if k not in ignored}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env(tmp_path):
    return {
        "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-9f8e7d6c5b4a",
        "FIELD_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "ALLOWED_HOSTS": "mailferry.example.com",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "BEHIND_TLS_PROXY": "1",
        "MAILFERRY_VAR_DIR": str(tmp_path),
    }


def test_check_deploy_is_clean_with_production_variables(tmp_path):
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_is_off_by_default(tmp_path):
    result = run_manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.conf import settings; print(settings.DEBUG)",
        MAILFERRY_VAR_DIR=str(tmp_path),
    )
    assert result.stdout.strip() == "False", result.stderr


def test_embedded_default_needs_no_server(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "from migrator.celery import app; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, app.conf.task_always_eager)"
    )
    env = {"MAILFERRY_VAR_DIR": str(tmp_path)}
    result = run_manage("shell", "-v", "0", "-c", code, **env)
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://", "False"]
    assert (tmp_path / "secret_key").exists() and (tmp_path / "field_key").exists()
