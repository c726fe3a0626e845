FROM python:3.11-slim AS base
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
RUN pip install --no-cache-dir . && useradd --system --uid 10001 sidecar

# The conformance suite QA teams run against any payer-to-payer server (docker build --target conformance).
# Java (17 or later) and the validator are built in so the profile group runs when IG packages are mounted at /packages.
FROM base AS conformance
RUN apt-get update && apt-get install -y --no-install-recommends default-jdk-headless maven \
    && rm -rf /var/lib/apt/lists/*
COPY validator ./validator
# Editable, so the package finds validator/ beside it (sidecar/validation looks for it there).
# It runs as root: it writes its reports into a folder mounted from the host, whatever that folder's owner.
RUN pip install --no-cache-dir --no-deps -e . && validator/build && rm -rf /root/.m2
WORKDIR /work
ENTRYPOINT ["pdex-sidecar", "conformance"]
CMD ["--help"]

# The sidecar (the default target: last stage).
FROM base AS sidecar
# /files: job files, a volume the replicas share (SIDECAR_FILES_DIR in compose/docker-compose.yml); a new named
# volume takes this directory's owner.
RUN mkdir /data /files && chown sidecar /data /files
USER sidecar
# The metrics listener (README "Metrics") answers inside the container's networks; it is never published.
ENV SIDECAR_HOST=0.0.0.0 SIDECAR_PORT=8000 SIDECAR_DATA_DIR=/data SIDECAR_METRICS_HOST=0.0.0.0 SIDECAR_METRICS_PORT=9464
EXPOSE 8000 9464
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live').status == 200 else 1)"
CMD ["pdex-sidecar", "serve"]
