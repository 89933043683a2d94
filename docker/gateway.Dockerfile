# The FastAPI gateway: no model, no GPU; talks gRPC to the Triton container.
# Build from the repository root:  docker build -f docker/gateway.Dockerfile -t fvi-gateway .
FROM python:3.11-slim

WORKDIR /opt/fvi
RUN pip install --no-cache-dir "numpy==1.26.4" "opencv-python-headless==4.11.0.86" "Pillow==13.0.0" \
        "fastapi==0.165.0" "starlette==1.10.0" "uvicorn==0.54.0" "python-multipart==0.0.34" \
        "pydantic==2.14.3" "tritonclient[grpc]==2.73.0" "grpcio==1.85.1" "protobuf==6.33.6" \
        "prometheus-client==0.26.0"
COPY pyproject.toml ./
COPY fvi/ fvi/
COPY gateway/ gateway/
COPY client/ client/
RUN pip install --no-cache-dir --no-deps -e . \
 && useradd --system --uid 10001 --no-create-home fvi
USER fvi

# Other settings (README, "Gateway"): FVI_API_KEY (unset = no auth), FVI_CORS_ORIGINS (unset = no CORS),
# FVI_MAX_UPLOAD_BYTES, FVI_MAX_BATCH_IMAGES, FVI_MAX_BATCH_BYTES, FVI_MAX_IN_FLIGHT, FVI_REQUEST_TIMEOUT_S, FVI_LOG_LEVEL
ENV FVI_TRITON_URL=triton:8001 PYTHONDONTWRITEBYTECODE=1
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2).status != 200)"
CMD ["uvicorn", "gateway.app:app_from_env", "--factory", "--host", "0.0.0.0", "--port", "8080", "--no-access-log"]
