FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
RUN pip install --no-cache-dir . && useradd --system --uid 10001 sidecar && mkdir /data && chown sidecar /data
USER sidecar
ENV SIDECAR_HOST=0.0.0.0 SIDECAR_PORT=8000 SIDECAR_DATA_DIR=/data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live').status == 200 else 1)"
CMD ["pdex-sidecar", "serve"]
