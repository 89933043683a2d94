"""Start the real tritonserver shipped in the nvidia-pytriton wheel, on this machine, without Docker.

Finds the binary and its libraries, prepares a backend directory with the Python-backend stub for
the running interpreter, picks free ports, waits for readiness and stops the process cleanly.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from fvi import MODELS_DIR

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_REPOSITORY = REPO_ROOT / "model_repository"
RUN_DIR = Path(os.environ.get("FVI_RUN_DIR", REPO_ROOT / "run"))
NET_MODELS = ("detector", "reader")  # the models that run an ONNX file; the cropper is a Python step
PYTHON_SHM_BYTES = 16 * 2**20
MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": str(64 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20),
                 "MALLOC_TOP_PAD_": str(64 * 2**20)}


def _pytriton_root() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nvidia-pytriton is not installed: run 'make setup'")
    return Path(list(spec.submodule_search_locations)[0]) / "tritonserver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_backends(run_dir: Path = RUN_DIR) -> Path:
    """<run_dir>/backends/python with the stub for this Python version (as pytriton itself does)."""
    root = _pytriton_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise RuntimeError(f"no Python-backend stub for Python {version} in {stub.parent.parent}")
    target = run_dir / "backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    for f in (root / "backends" / "python").iterdir():
        dest = target / f.name
        if f.is_file() and not dest.exists():
            shutil.copy2(f, dest)
    dest = target / "triton_python_backend_stub"
    if not dest.exists() or not filecmp.cmp(stub, dest, shallow=False):  # a running server holds it open
        shutil.copy2(stub, dest)
    return run_dir / "backends"


def check_model_repository(repo: Path = MODEL_REPOSITORY, models_dir: Path = MODELS_DIR) -> None:
    """Every net the repository has a folder for has its ONNX file installed (a repository without nets passes),
    and it is the committed one: a server of stale copies would answer for models that are no longer ours."""
    installed = {n: repo / n / "1" / "model.onnx" for n in NET_MODELS if (repo / n).is_dir()}
    missing = [n for n, f in installed.items() if not f.exists()]
    if missing:
        raise RuntimeError(f"model_repository lacks {', '.join(missing)}/1/model.onnx: run 'make engines'")
    stale = [n for n, f in installed.items()
             if (models_dir / f"{n}.onnx").exists() and not filecmp.cmp(models_dir / f"{n}.onnx", f, shallow=False)]
    if stale:
        raise RuntimeError(f"stale models in model_repository ({', '.join(stale)}): they differ from {models_dir}/*.onnx, "
                           "the committed ones; run 'make engines'")


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    libs = Path(sysconfig.get_paths()["purelib"]) / "nvidia_pytriton.libs"
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
    # the stub imports numpy/onnxruntime/opencv/fvi from the environment whose python comes first
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    # Photos and cards cross the server and its stubs as multi-MB tensors on every request; glibc's
    # default serves those with fresh mmaps (page faults, zeroing, munmap) each time. Keeping them on
    # the heap measured ~10% more cards/s at concurrency 8 and ~3 ms less at concurrency 1 (bench/run.py).
    for knob, value in MALLOC_TUNING.items():
        env.setdefault(knob, value)
    return env


@dataclass
class TritonServer:
    """A running tritonserver; use as a context manager or call start()/stop()."""

    model_repository: Path = MODEL_REPOSITORY
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    log_path: Path = RUN_DIR / "tritonserver.log"
    extra_args: list[str] = field(default_factory=list)
    ready_model: str = "fvi_ensemble"  # what must be ready before start() returns
    process: subprocess.Popen | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 180.0) -> "TritonServer":
        check_model_repository(self.model_repository)
        backends = prepare_backends()
        self.http_port = self.http_port or free_port()
        self.grpc_port = self.grpc_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        binary = _pytriton_root() / "bin" / "tritonserver"
        cmd = [str(binary), f"--model-repository={self.model_repository}", f"--backend-directory={backends}",
               f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}", f"--metrics-port={self.metrics_port}",
               "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--allow-metrics=true",
               "--exit-on-error=true", "--strict-readiness=true", "--log-verbose=0",
               # each Python-backend stub's shared memory starts large enough for a photo and grows in
               # big steps, instead of 1 MB growth steps on the first large tensors
               f"--backend-config=python,shm-default-byte-size={PYTHON_SHM_BYTES}",
               f"--backend-config=python,shm-growth-byte-size={PYTHON_SHM_BYTES}", *self.extra_args]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=server_env(), start_new_session=True)
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.http_url}/v2/models/{self.ready_model}/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with code {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"tritonserver not ready within {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        p, self.process = self.process, None
        if p is None or p.poll() is not None:
            return
        os.killpg(p.pid, signal.SIGTERM)  # the server and its Python-backend stubs
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description="Run the embedded tritonserver on the FVI model repository.")
    ap.add_argument("--http-port", type=int, default=int(os.environ.get("TRITON_HTTP_PORT", 8000)))
    ap.add_argument("--grpc-port", type=int, default=int(os.environ.get("TRITON_GRPC_PORT", 8001)))
    ap.add_argument("--metrics-port", type=int, default=int(os.environ.get("TRITON_METRICS_PORT", 8002)))
    a = ap.parse_args()
    server = TritonServer(http_port=a.http_port, grpc_port=a.grpc_port, metrics_port=a.metrics_port).start()
    print(f"tritonserver ready: grpc {server.grpc_url}, http {server.http_url}; log {server.log_path}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (server.stop(), sys.exit(0)))
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
