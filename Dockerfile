# Certcloud: a wheel built in one stage, installed in the next from requirements.lock (every
# dependency pinned with its hashes); migrations first, then the API (uvicorn).

FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir setuptools==84.2.1
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --no-build-isolation --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# Production by default: it refuses the sandbox verifier and generated secrets, and serves no
# /sandbox. Development in a container needs CERTCLOUD_ENVIRONMENT=development and
# `certcloud serve --allow-remote-development` (it shows every SMS code).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CERTCLOUD_ENVIRONMENT=production \
    CERTCLOUD_DATA_DIR=/var/lib/certcloud
ENV PATH=/opt/certcloud/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends softhsm2 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/certcloud \
       --create-home --shell /usr/sbin/nologin certcloud \
    && chmod 0700 /var/lib/certcloud
COPY requirements.lock /tmp/requirements.lock
COPY --from=build /wheels /tmp/wheels
RUN python -m venv /opt/certcloud \
    && /opt/certcloud/bin/pip install --no-cache-dir --require-hashes --no-deps \
       -r /tmp/requirements.lock \
    && /opt/certcloud/bin/pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && /opt/certcloud/bin/pip check \
    && rm -rf /tmp/wheels /tmp/requirements.lock

USER certcloud
WORKDIR /var/lib/certcloud
# The CA, the key ring and (SQLite) the database live here; mount a volume that outlives the
# container. In production the CA and the key ring are made once by the operator
# (`certcloud ca init`) on that volume; the container only migrates and serves.
VOLUME ["/var/lib/certcloud"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)" || exit 1
# `db upgrade` holds a PostgreSQL advisory lock while it migrates: replicas starting together
# migrate one after another, and the later ones find the schema at head.
CMD ["sh", "-c", "certcloud db upgrade && exec certcloud serve --host 0.0.0.0 --port 8000 --workers ${CERTCLOUD_WORKERS:-2}"]
