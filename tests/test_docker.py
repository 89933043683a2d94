"""The Docker deployment can't be built on these machines (no Docker engine), so check it statically:
every file it copies exists, ports and model paths agree with the project's settings."""
from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from fvi.triton_launcher import NET_MODELS
from gateway.config import DEFAULT_TRITON_URL

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def _copies(dockerfile: Path) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^COPY\s+(\S+)\s+\S+", dockerfile.read_text(), re.M)]


@pytest.mark.parametrize("name", ["triton.Dockerfile", "gateway.Dockerfile"])
def test_dockerfiles_copy_files_that_exist(name):
    dockerfile = DOCKER / name
    for src in _copies(dockerfile):
        assert (ROOT / src).exists(), f"{name} copies {src}, which is not in the repository"
    text = dockerfile.read_text()
    assert "HEALTHCHECK" in text


def test_gateway_image_runs_as_non_root():
    text = (DOCKER / "gateway.Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")


def test_triton_image_serves_a_config_variant_that_exists():
    text = (DOCKER / "triton.Dockerfile").read_text()
    default = re.search(r"ENV FVI_MODEL_CONFIG=(\S+)", text).group(1)
    variants = {default}
    for compose in DOCKER.glob("compose.*.yml"):
        variants |= set(re.findall(r"FVI_MODEL_CONFIG: \$\{FVI_MODEL_CONFIG:-(\w+)\}|FVI_MODEL_CONFIG: (\w+)", compose.read_text())[0]) - {""}
    for variant in variants:
        for net in NET_MODELS:  # the Python steps have one config, which Triton falls back to for every variant
            assert (ROOT / "model_repository" / net / "configs" / f"{variant}.pbtxt").exists(), (variant, net)
    entrypoint = (DOCKER / "triton-entrypoint.sh").read_text()
    assert "ENTRYPOINT [\"fvi-triton\"]" in text and "REPO=/opt/fvi/model_repository" in entrypoint


def test_triton_image_installs_what_fvi_imports_at_the_versions_serving_pins():
    """The Python steps run fvi's core inside the image: a package it imports and the image lacks fails only there."""
    text = (DOCKER / "triton.Dockerfile").read_text()
    image = dict(re.findall(r'"([\w.\-]+)(?:\[\w,]+\])?==([^"]+)"', text))
    serve = dict(re.findall(r"^([\w.\-]+)(?:\[\w,]+\])?==(\S+)", (ROOT / "requirements" / "serve.txt").read_text(), re.M))
    assert {name: serve.get(name, version) for name, version in image.items()} == image
    modules = {m for path in (ROOT / "fvi").glob("*.py") for m in re.findall(r"^(?:import|from) (\w+)", path.read_text(), re.M)}
    third_party = modules - set(sys.stdlib_module_names) - {"fvi", "__future__"}
    distributions = importlib.metadata.packages_distributions()
    installed = {name.lower().replace("_", "-") for name in image}
    for module in third_party:
        assert installed & {d.lower().replace("_", "-") for d in distributions[module]}, \
            f"fvi imports {module}; the Triton image does not install it"


def test_compose_ports_agree_with_the_gateway_and_triton_defaults():
    grpc_port = DEFAULT_TRITON_URL.rsplit(":", 1)[1]
    for compose in DOCKER.glob("compose.*.yml"):
        text = compose.read_text()
        assert f"FVI_TRITON_URL: triton:{grpc_port}" in text, compose.name
        assert f'"{grpc_port}:{grpc_port}"' in text and '"8080:8080"' in text, compose.name
        assert "service_healthy" in text and "healthcheck" in text, compose.name
    gpu = (DOCKER / "compose.gpu.yml").read_text()
    assert "runtime: nvidia" in gpu and "NVIDIA_VISIBLE_DEVICES: ${CUDA_VISIBLE_DEVICES:-all}" in gpu
