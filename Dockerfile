FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/venv UV_PYTHON_DOWNLOADS=never \
    PATH=/venv/bin:$PATH STUDIO_VAR_DIR=/data MEDIA_ROOT=/data/media
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN DJANGO_SECRET_KEY=build python manage.py collectstatic --noinput --verbosity 0
RUN useradd --create-home studio && mkdir -p /data/media && chown -R studio /data
USER studio
EXPOSE 8000
CMD ["gunicorn", "studio.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "8", "--worker-class", "gthread", "--timeout", "300", "--access-logfile", "-"]
