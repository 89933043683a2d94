"""`make engines`: put the committed ONNX models into the Triton model repository, validated.

For each network: onnx.checker, then its input/output names, types and shapes against every
config variant of that model (config.pbtxt and configs/*.pbtxt); copy to <model>/1/model.onnx
when it changed. Where an NVIDIA GPU and the tensorrt package exist, also build <model>/1/model.plan.
Running it twice changes nothing the second time.
"""
from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

import onnx
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from fvi.triton_launcher import NET_MODELS

REPO_ROOT = Path(__file__).resolve().parent.parent
NETS = NET_MODELS
MAKE = {"detector": "python -m converters.db_detector", "reader": "python -m training.reader train, then export"}
_ONNX_TO_TRITON = {onnx.TensorProto.FLOAT: mc.TYPE_FP32, onnx.TensorProto.FLOAT16: mc.TYPE_FP16,
                   onnx.TensorProto.UINT8: mc.TYPE_UINT8}


def load_config(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def config_variants(model_dir: Path) -> dict[str, mc.ModelConfig]:
    paths = [model_dir / "config.pbtxt", *sorted((model_dir / "configs").glob("*.pbtxt"))]
    return {str(p.relative_to(model_dir)): load_config(p) for p in paths if p.exists()}


def _io(values) -> dict[str, tuple[int, list[int]]]:
    out = {}
    for v in values:
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
        out[v.name] = (_ONNX_TO_TRITON.get(v.type.tensor_type.elem_type, -1), dims)
    return out


def validate(onnx_path: Path, model_dir: Path) -> list[str]:
    """Problems found (empty when the ONNX file fits every config variant of the model)."""
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    graph_in, graph_out = _io(model.graph.input), _io(model.graph.output)
    problems = []
    for variant, cfg in config_variants(model_dir).items():
        for tensors, graph in ((cfg.input, graph_in), (cfg.output, graph_out)):
            for t in tensors:
                if t.name not in graph:
                    problems.append(f"{variant}: tensor {t.name!r} is not in {onnx_path.name} (has {sorted(graph)})")
                    continue
                dtype, dims = graph[t.name]
                want = ([-1] if cfg.max_batch_size > 0 else []) + list(t.dims)
                if dtype != t.data_type:
                    problems.append(f"{variant}: {t.name} type {mc.DataType.Name(t.data_type)} vs ONNX {dtype}")
                if len(dims) != len(want) or any(w != -1 and d != -1 and w != d for w, d in zip(want, dims)):
                    problems.append(f"{variant}: {t.name} dims {want} vs ONNX {dims}")
    return problems


def gpu_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return shutil.which("nvidia-smi") is not None and Path("/dev/nvidia0").exists()


def install(models_dir: Path, repository: Path) -> int:
    failed = False
    for name in NETS:
        src, model_dir = models_dir / f"{name}.onnx", repository / name
        if not src.exists():
            print(f"{name}: {src} is missing (make it: {MAKE[name]})")
            failed = True
            continue
        problems = validate(src, model_dir)
        if problems:
            print(f"{name}: {src.name} does not match its Triton configs:\n  " + "\n  ".join(problems))
            failed = True
            continue
        dest = model_dir / "1" / "model.onnx"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists() and filecmp.cmp(src, dest, shallow=False):
            print(f"{name}: {dest.relative_to(repository.parent)} up to date")
        else:
            shutil.copy2(src, dest)
            print(f"{name}: installed {dest.relative_to(repository.parent)} ({src.stat().st_size / 2**20:.1f} MB)")
    if failed:
        return 1
    if gpu_available():
        from converters.onnx_to_tensorrt import build_repository_plans

        build_repository_plans(repository)
    else:
        print("TensorRT plans: skipped (no NVIDIA GPU or no tensorrt package here); the ONNX models serve as they are")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", type=Path, default=REPO_ROOT / "models")
    ap.add_argument("--repository", type=Path, default=REPO_ROOT / "model_repository")
    a = ap.parse_args()
    sys.exit(install(a.models, a.repository))


if __name__ == "__main__":
    main()
