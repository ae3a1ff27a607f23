# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MAILFERRY_VAR_DIR=/var/lib/mailferry
WORKDIR /app

RUN useradd --system --home-dir /app --shell /usr/sbin/nologin mailferry \
    && mkdir -p /var/lib/mailferry && chown mailferry /var/lib/mailferry

# The dependencies first (pyproject.toml installs no package of its own), so code changes
# reuse this layer.
COPY pyproject.toml ./
RUN pip install --no-cache-dir .

COPY . .
RUN SECRET_KEY=build-only \
    FIELD_ENCRYPTION_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY= \
    python manage.py collectstatic --noinput -v0

USER mailferry
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD python -c "import socket; socket.create_connection(('127.0.0.1', 8000), 4)"
CMD ["gunicorn", "migrator.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
