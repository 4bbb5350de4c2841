# syntax=docker/dockerfile:1
# smstally image: the worker (the default command) and the read side.
#
#   docker build -t smstally .
#   docker run --rm -e SMSTALLY_BROKER=kafka://broker:9092 -p 6066:6066 smstally
#   docker run --rm -e SMSTALLY_BROKER=kafka://broker:9092 -e SMSTALLY_API_TOKEN=... \
#     -e SMSTALLY_API_HOST=0.0.0.0 -e SMSTALLY_READ_DB=postgresql://user:pass@db/smstally \
#     -p 8080:8080 smstally smstally api
#
# Only the production dependencies are installed: no embedded broker (the
# `embedded` extra is for local development), no test tools.

# --- build: a virtualenv with the project and its dependencies --------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"

WORKDIR /src

# Dependencies first, read from pyproject.toml, so that a change of the code alone
# does not reinstall them (layer cache). Every dependency ships manylinux wheels
# for CPython 3.11, so no compiler is needed.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install --upgrade pip \
 && pip install -r /tmp/requirements.txt

# Then the project itself (the packages listed in pyproject.toml, readmodel included,
# and the `smstally` console script), as a regular, non-editable install.
COPY . .
RUN pip install . \
 && smstally --help >/dev/null

# --- runtime ------------------------------------------------------------------------
FROM python:3.11-slim

ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SMSTALLY_DATA_DIR=/var/lib/smstally \
    SMSTALLY_WEB_PORT=6066

RUN groupadd --system --gid 10001 smstally \
 && useradd --system --uid 10001 --gid smstally --home-dir /var/lib/smstally --no-create-home --shell /usr/sbin/nologin smstally \
 && mkdir -p /var/lib/smstally \
 && chown smstally:smstally /var/lib/smstally

COPY --from=build /opt/venv /opt/venv

USER smstally:smstally
WORKDIR /var/lib/smstally

# Local state (RocksDB tables, rebuilt from the changelog topics when lost). A new
# named volume mounted here inherits the ownership above.
VOLUME ["/var/lib/smstally"]

# HTTP: 6066 for the worker (health /health/live, metrics); 8080 for the same image
# run as `smstally api` (read API, dashboard, /health/live; SMSTALLY_API_PORT).
EXPOSE 6066 8080

# The worker's probe; `smstally api` containers override it (docker-compose.yml).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://localhost:%s/health/live' % os.environ.get('SMSTALLY_WEB_PORT', '6066'), timeout=4)"]

# Faust handles SIGTERM itself (clean shutdown, offsets committed).
STOPSIGNAL SIGTERM
CMD ["smstally", "worker"]
