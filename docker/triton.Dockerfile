# Triton side for GPU hosts: the NGC image (Triton 2.51, same as the embedded binary) with the
# native onnxruntime / TensorRT backends for the nets and what the Python steps import.
# Build from the repository root:  docker build -f docker/triton.Dockerfile -t fvi-triton .
FROM nvcr.io/nvidia/tritonserver:24.10-py3

WORKDIR /opt/fvi
COPY requirements/ requirements/
# the Python steps need numpy/opencv/Pillow/rapidfuzz/wordfreq/onnx (not onnxruntime: the nets use Triton's backend)
# tensorrt: the Python builder matching the image's TensorRT 10.5, for `make engines` / plans at start-up
RUN pip install --no-cache-dir "numpy==1.26.4" "opencv-python-headless==4.11.0.86" "Pillow==13.0.0" "rapidfuzz==3.14.6" \
        "wordfreq==3.1.1" "onnx==1.23.2" "tritonclient[grpc]==2.73.0" "protobuf==6.33.6" "tensorrt-cu12==10.5.0"
COPY pyproject.toml ./
COPY fvi/ fvi/
COPY converters/ converters/
COPY models/ models/
COPY model_repository/ model_repository/
RUN pip install --no-cache-dir --no-deps -e . \
 && python -m converters.install_engines --models models --repository model_repository

COPY docker/triton-entrypoint.sh /usr/local/bin/fvi-triton
ENV FVI_MODEL_CONFIG=onnxruntime
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=5 \
  CMD curl -fsS http://127.0.0.1:8000/v2/models/fvi_ensemble/ready || exit 1
# onnxruntime (TensorRT accelerator) by default; FVI_MODEL_CONFIG=tensorrt builds and serves plans,
# FVI_MODEL_CONFIG=onnxruntime_cpu runs the nets on CPU.
ENTRYPOINT ["fvi-triton"]
