# The service's runtime install (no torch, no eval or test packages) on Python 3.11, run as a non-root user.
#   docker build -t invekto-knowledge .
#   docker run -p 7104:7104 -v invekto-data:/data invekto-knowledge
# Everything is offline by default: the embedder's weights ship inside its package.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, from the hashed runtime lock, so a code change reuses this layer.
COPY requirements/runtime.lock requirements/runtime.lock
RUN /opt/venv/bin/pip install --no-deps --require-hashes -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY api api
COPY assist assist
COPY eval eval
COPY ingestion ingestion
COPY retrieval retrieval
RUN /opt/venv/bin/pip install --no-deps --no-compile . \
    && /opt/venv/bin/pip check

FROM python:3.11-slim-bookworm
# libmagic: file-type detection inside unstructured, as on a developer's machine.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group invekto \
    && mkdir /data && chown invekto:invekto /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DO_NOT_TRACK=1 SCARF_NO_ANALYTICS=true HF_HUB_OFFLINE=1 \
    INVEKTO_DATA_DIR=/data \
    INVEKTO_HOST=0.0.0.0 \
    INVEKTO_PORT=7104
USER invekto
WORKDIR /data
VOLUME ["/data"]
EXPOSE 7104
# /healthz: the process is up (/readyz also checks the index, the registry database and the ingestion worker).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('INVEKTO_PORT', '7104'); sys.exit(urllib.request.urlopen(url, timeout=4).status != 200)"]
CMD ["invekto-knowledge", "serve"]
