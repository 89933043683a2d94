#!/usr/bin/env bash
# Start Triton on the FVI repository with the chosen config variant. For `tensorrt`, build the plans
# on this GPU first (a plan is specific to the GPU and TensorRT version, so it is never shipped).
set -euo pipefail
REPO=/opt/fvi/model_repository
VARIANT=${FVI_MODEL_CONFIG:-onnxruntime}
if [ "$VARIANT" = "tensorrt" ] && [ ! -f "$REPO/reader/1/model.plan" ]; then
  python -m converters.onnx_to_tensorrt --repository "$REPO"
fi
exec tritonserver --model-repository="$REPO" --model-config-name="$VARIANT" \
  --strict-readiness=true --exit-on-error=true "$@"
