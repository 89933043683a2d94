"""The Triton model repository: every config parses with Triton's own schema, the ensemble is wired
consistently, and `make engines` validates and installs the committed ONNX models idempotently."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from converters.install_engines import NETS, config_variants, install, load_config, validate

ROOT = Path(__file__).resolve().parent.parent
REPO = ROOT / "model_repository"
MODELS = ROOT / "models"


def _configs():
    return {p.parent.name: load_config(p) for p in REPO.glob("*/config.pbtxt")}


def test_every_config_variant_parses_and_names_its_folder():
    for model_dir in REPO.iterdir():
        for variant, cfg in config_variants(model_dir).items():
            assert cfg.name == model_dir.name, f"{model_dir.name}/{variant}"


def test_design_card_models_exist():
    assert {"cropper", "detector", "reader", "fvi_ensemble"} <= set(_configs())


def test_every_version_folder_survives_a_clone():
    """git keeps no empty folders, and Triton refuses a model without a version folder."""
    tracked = subprocess.run(["git", "ls-files", "model_repository"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    for name in _configs():
        assert any(t.startswith(f"model_repository/{name}/1/") for t in tracked), f"{name}/1/ has no tracked file"


def test_ensemble_steps_agree_with_composing_models():
    cfgs = _configs()
    ens = cfgs["fvi_ensemble"]
    produced = {t.name: t for t in ens.input}
    for step in ens.ensemble_scheduling.step:
        model = cfgs[step.model_name]
        inputs = {t.name: t for t in model.input}
        outputs = {t.name: t for t in model.output}
        for key, tensor in step.input_map.items():
            assert key in inputs, f"{step.model_name} has no input {key}"
            assert tensor in produced, f"{step.model_name}.{key} reads {tensor} before any step produces it"
            src = produced[tensor]
            assert src.data_type == inputs[key].data_type, f"{tensor} type mismatch into {step.model_name}"
            src_dims = list(src.dims)
            want = ([-1] if model.max_batch_size > 0 else []) + list(inputs[key].dims)
            if model.max_batch_size > 0 and src_dims and src_dims[0] != -1:
                want[0] = src_dims[0]  # a step emitting a fixed leading 1 feeds a batching net as batch 1
            assert len(src_dims) == len(want) and all(a == b or -1 in (a, b) for a, b in zip(src_dims, want)), \
                f"{tensor}: {src_dims} into {step.model_name}.{key} {want}"
        for key, tensor in step.output_map.items():
            assert key in outputs, f"{step.model_name} has no output {key}"
            out = outputs[key]
            dims = ([-1] if model.max_batch_size > 0 else []) + list(out.dims)
            produced[tensor] = type(out)(name=tensor, data_type=out.data_type, dims=dims)
    for out in ens.output:
        assert out.name in produced, f"ensemble output {out.name} is never produced"


def test_nets_batch_dynamically():
    cfgs = _configs()
    for net in NETS:
        assert cfgs[net].max_batch_size > 0 and cfgs[net].HasField("dynamic_batching"), net
        variants = config_variants(REPO / net)
        assert {"config.pbtxt", "configs/onnxruntime.pbtxt", "configs/tensorrt.pbtxt"} <= set(variants)
        io = {v: ([(t.name, list(t.dims)) for t in c.input], [(t.name, list(t.dims)) for t in c.output]) for v, c in variants.items()}
        assert len({repr(x) for x in io.values()}) == 1, f"{net}: variants disagree on inputs/outputs: {io}"


def test_every_line_of_a_photo_fits_one_reader_batch():
    from fvi import text_detector

    for variant, cfg in config_variants(REPO / "reader").items():
        # the first reading and the one turned over (the cropper's BLS call): every line the detector keeps
        assert cfg.max_batch_size >= text_detector.PARAMS.max_lines, variant


@pytest.mark.parametrize("net", NETS)
def test_committed_onnx_fits_every_config(net):
    assert validate(MODELS / f"{net}.onnx", REPO / net) == []


def test_validation_reports_a_mismatch(tmp_path):
    model_dir = tmp_path / "reader"
    shutil.copytree(REPO / "reader", model_dir, ignore=shutil.ignore_patterns("*.onnx", "*.plan"))
    cfg = model_dir / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("dims: [ 1, 32, -1 ]", "dims: [ 1, 48, -1 ]"))
    problems = validate(MODELS / "reader.onnx", model_dir)
    assert problems and "dims" in problems[0]


def test_install_is_idempotent(tmp_path):
    repo = tmp_path / "model_repository"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("*.onnx", "*.plan"))
    assert install(MODELS, repo) == 0
    assert all((repo / n / "1" / "model.onnx").exists() for n in NETS)
    out = subprocess.run([sys.executable, "-m", "converters.install_engines", "--repository", str(repo)],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.count("up to date") == len(NETS) and "TensorRT plans" in out


@pytest.mark.parametrize("net", NETS)
def test_tensorrt_profiles_cover_what_the_configs_accept(net):
    """The plan's optimisation profile (built on a GPU host) must span every shape Triton will send."""
    from converters.onnx_to_tensorrt import DYNAMIC_DIMS, profile_shapes

    cfg = load_config(REPO / net / "configs" / "tensorrt.pbtxt")
    dims = tuple(cfg.input[0].dims)
    lo, opt, hi = profile_shapes(dims, DYNAMIC_DIMS.get(net, {}), cfg.max_batch_size,
                                 max(cfg.dynamic_batching.preferred_batch_size))
    assert lo[0] == 1 and hi[0] == cfg.max_batch_size
    assert all(a <= b <= c for a, b, c in zip(lo, opt, hi))
    for i, d in enumerate(dims, start=1):
        assert (lo[i] == hi[i] == d) if d != -1 else lo[i] < hi[i]


def test_a_server_of_stale_models_is_refused_before_it_starts(tmp_path):
    from fvi.triton_launcher import check_model_repository

    repo = tmp_path / "model_repository"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("*.onnx", "*.plan"))
    with pytest.raises(RuntimeError, match="lacks detector, reader/1/model.onnx: run 'make engines'"):
        check_model_repository(repo)
    assert install(MODELS, repo) == 0
    check_model_repository(repo)  # the committed models: fine
    shutil.copy(MODELS / "detector.onnx", repo / "reader" / "1" / "model.onnx")  # e.g. models/ retrained since
    with pytest.raises(RuntimeError, match=r"stale models in model_repository \(reader\): they differ from .*models/\*.onnx.*run 'make engines'"):
        check_model_repository(repo)
