"""ONNX → TensorRT plan (FP16, an optimisation profile over the batch, the detector's photo sides and the reader's
line width).

Needs an NVIDIA GPU and the `tensorrt` package; `make engines` calls it only where both exist.
The plan is written next to the ONNX file as <model>/1/model.plan, which the `tensorrt_plan`
config variant (configs/tensorrt.pbtxt, --model-config-name=tensorrt) serves.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from fvi import reader, text_detector
from fvi.triton_launcher import NET_MODELS as NETS

# (min, opt, max) of each dynamic item dimension (-1 in the config), by net and dimension index:
# the detector's sides run from one stride to the long side it looks at (a 4:3 photo is the usual one); the
# reader's width from one bucket to the widest line (most cards need the widest).
_SIDE = max(text_detector.PARAMS.first_side, text_detector.PARAMS.second_side)
DYNAMIC_DIMS: dict[str, dict[int, tuple[int, int, int]]] = {
    "detector": {1: (text_detector.STRIDE, _SIDE * 3 // 4, _SIDE), 2: (text_detector.STRIDE, _SIDE, _SIDE)},
    "reader": {2: (reader.WIDTH_BUCKET, reader.INPUT_W, reader.INPUT_W)},
}


def profile_shapes(item_dims: tuple[int, ...], dynamic: dict[int, tuple[int, int, int]], max_batch: int,
                   opt_batch: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """min / opt / max input shapes (batch first) of the optimisation profile."""
    shapes = []
    for k, batch in enumerate((1, opt_batch, max_batch)):
        item = []
        for i, d in enumerate(item_dims):
            if d == -1:
                if i not in dynamic:
                    raise ValueError(f"dimension {i} is dynamic but has no (min, opt, max) in DYNAMIC_DIMS")
                d = dynamic[i][k]
            item.append(d)
        shapes.append((batch, *item))
    return shapes[0], shapes[1], shapes[2]


def build_plan(onnx_path: Path, plan_path: Path, input_name: str, shapes: tuple[tuple[int, ...], ...],
               fp16: bool = True, workspace_gb: float = 1.0) -> Path:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * 2**30))
    if fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, *shapes)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    plan_path.write_bytes(bytes(plan))
    return plan_path


def build_repository_plans(repository: Path) -> None:
    for name in NETS:
        cfg = text_format.Parse((repository / name / "configs" / "tensorrt.pbtxt").read_text(), mc.ModelConfig())
        inp = cfg.input[0]
        preferred = list(cfg.dynamic_batching.preferred_batch_size) or [cfg.max_batch_size]
        shapes = profile_shapes(tuple(inp.dims), DYNAMIC_DIMS.get(name, {}), cfg.max_batch_size, max(preferred))
        plan = build_plan(repository / name / "1" / "model.onnx", repository / name / "1" / "model.plan", inp.name, shapes)
        print(f"{name}: built {plan.relative_to(repository.parent)} (FP16, profile {shapes[0]} .. {shapes[2]})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repository", type=Path, default=Path(__file__).resolve().parent.parent / "model_repository")
    build_repository_plans(ap.parse_args().repository)


if __name__ == "__main__":
    main()
