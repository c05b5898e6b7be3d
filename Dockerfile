# Certcloud: migrations first, then the API (uvicorn with uvloop + httptools).
FROM python:3.11-slim

# Production by default: it refuses the sandbox verifier and generated secrets, and serves no
# /sandbox. Development in a container needs CERTCLOUD_ENVIRONMENT=development and
# `certcloud serve --allow-remote-development` (it shows every SMS code).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CERTCLOUD_ENVIRONMENT=production \
    CERTCLOUD_DATA_DIR=/var/lib/certcloud
RUN apt-get update && apt-get install -y --no-install-recommends softhsm2 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/certcloud --create-home certcloud
WORKDIR /srv/certcloud
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-cache-dir -e .

USER certcloud
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)" || exit 1
# In production the CA and the key ring are made once by the operator (`certcloud ca init`)
# on the mounted data volume; the container only migrates and serves.
CMD ["sh", "-c", "certcloud db upgrade && exec certcloud serve --host 0.0.0.0 --port 8000 --workers ${CERTCLOUD_WORKERS:-2}"]
