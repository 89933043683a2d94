"""Send photos straight to Triton's fvi_ensemble over gRPC and print one JSON line per image.

    python -m client.fvi_client IMAGE_OR_FOLDER [--url 127.0.0.1:8001] [--annotate OUT_DIR] [--timeout S]

This bypasses the HTTP gateway on purpose: it is the shortest path to see what the served graph
itself returns (and, with --annotate, where it found the card and the lines on the photo).
stdout: {"path": ..., "result": {...}} per image ({"path": ..., "error": {...}} for a rejected one).
stderr: human-readable errors. Exit code 0 when every image was read, 2 when the server is
unreachable, an input is missing, or the server rejected at least one image.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fvi.schema import LINE_META_COLUMNS

MODEL = "fvi_ensemble"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
EXIT_ERROR = 2


class ClientError(Exception):
    """Fatal: nothing more can be sent (server unreachable, model not ready, bad path)."""


class ImageRejected(Exception):
    """The server refused this one image (not an image, too small, ...); other images may still work."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class EnsembleOutput:
    result: dict[str, Any]  # the OcrResult as a dict (fvi/schema.py)
    corners: np.ndarray  # 4 x 2, TL TR BR BL in photo pixels
    line_meta: np.ndarray  # N x 9: a line's corners TL TR BR BL in photo pixels (reading order), score (-1: padding)


def list_images(target: Path) -> list[Path]:
    """One file as given, or the images directly inside a folder (sorted, so output order is stable)."""
    if target.is_file():
        return [target]
    if target.is_dir():
        images = sorted(p for p in target.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ClientError(f"no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images in folder {target}")
        return images
    raise ClientError(f"{target} does not exist")


def connect(url: str, timeout: float):
    """A gRPC client whose server is live and whose fvi_ensemble is ready, or ClientError saying which is not."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    try:
        client = grpcclient.InferenceServerClient(url)
        live = client.is_server_live(client_timeout=timeout)
    except InferenceServerException as e:
        raise ClientError(f"cannot reach Triton at {url} over gRPC ({_status(e)}: {e.message()}); "
                          "is the server running (make triton) and is --url its gRPC port?") from e
    if not live:
        raise ClientError(f"Triton at {url} answers but is not live")
    try:
        ready = client.is_model_ready(MODEL, client_timeout=timeout)
    except InferenceServerException as e:
        raise ClientError(f"Triton at {url}: cannot query model {MODEL} ({e.message()})") from e
    if not ready:
        raise ClientError(f"Triton at {url} is up but model {MODEL} is not ready (see the server log)")
    return client


def _status(e: Exception) -> str:
    status = getattr(e, "status", None)
    s = status() if callable(status) else None
    return str(s).replace("StatusCode.", "") if s else "error"


def _rejection(message: str) -> ImageRejected:
    """Server error text 'in ensemble 'fvi_ensemble', <code>: <why>' -> ImageRejected(code, why)."""
    msg = message.split(f"in ensemble '{MODEL}', ", 1)[-1].strip()
    code, sep, rest = msg.partition(": ")
    if sep and code.isidentifier():
        return ImageRejected(f"{code}: {rest}", code)
    return ImageRejected(msg)


def infer(client, data: bytes, timeout: float) -> EnsembleOutput:
    """One image through fvi_ensemble. Raises ImageRejected for a per-image refusal, ClientError otherwise."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    inp = grpcclient.InferInput("IMAGE", [1], "BYTES")
    inp.set_data_from_numpy(np.array([data], dtype=object))
    outputs = [grpcclient.InferRequestedOutput(n) for n in ("RESULT", "CORNERS", "LINE_META")]
    try:
        res = client.infer(MODEL, [inp], outputs=outputs, client_timeout=timeout)
    except InferenceServerException as e:
        status = _status(e)
        if status in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"):
            what = f"no answer within {timeout:g}s" if status == "DEADLINE_EXCEEDED" else "connection lost"
            raise ClientError(f"{what} ({status}: {e.message()})") from e
        raise _rejection(e.message() or str(e)) from e
    raw = res.as_numpy("RESULT").reshape(-1)[0]
    return EnsembleOutput(json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw),
                          res.as_numpy("CORNERS").reshape(4, 2), res.as_numpy("LINE_META").reshape(-1, LINE_META_COLUMNS))


def annotate_file(path: Path, data: bytes, out: EnsembleOutput, out_dir: Path) -> Path:
    """Write <out_dir>/<stem>.annotated.jpg; decoding like the server so corner pixels line up (EXIF)."""
    from client.annotate import write_annotated
    from fvi.image_io import decode_image

    return write_annotated(decode_image(data), out.result, out_dir / f"{path.stem}.annotated.jpg",
                           out.corners, out.line_meta)


def _emit(record: dict[str, Any]) -> None:
    print(json.dumps(record, ensure_ascii=False), flush=True)


def run(target: Path, url: str, annotate_dir: Path | None, timeout: float) -> int:
    """The CLI without argparse (importable); returns the exit code."""
    try:
        images = list_images(target)
        client = connect(url, timeout)
    except ClientError as e:
        print(f"fvi_client: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    failed = 0
    for path in images:
        try:
            data = path.read_bytes()
            out = infer(client, data, timeout)
        except OSError as e:
            failed += 1
            print(f"fvi_client: error: {path}: cannot read: {e}", file=sys.stderr)
            _emit({"path": str(path), "error": {"code": "unreadable_file", "message": str(e)}})
            continue
        except ImageRejected as e:
            failed += 1
            print(f"fvi_client: error: {path}: rejected by the server: {e}", file=sys.stderr)
            _emit({"path": str(path), "error": {"code": e.code, "message": str(e)}})
            continue
        except ClientError as e:
            print(f"fvi_client: error: {path}: {e}", file=sys.stderr)
            return EXIT_ERROR
        record: dict[str, Any] = {"path": str(path), "result": out.result}
        if annotate_dir is not None:
            try:
                record["annotated"] = str(annotate_file(path, data, out, annotate_dir))
            except Exception as e:  # drawing must never lose the result itself
                failed += 1
                print(f"fvi_client: error: {path}: could not annotate: {e}", file=sys.stderr)
        _emit(record)
    if failed:
        print(f"fvi_client: {failed} of {len(images)} image(s) failed", file=sys.stderr)
    return EXIT_ERROR if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m client.fvi_client",
                                 description="Read Vietnamese ID card photos with the served fvi_ensemble (Triton gRPC).")
    ap.add_argument("target", type=Path, metavar="IMAGE_OR_FOLDER",
                    help=f"one image, or a folder whose {', '.join(IMAGE_SUFFIXES)} files are all sent")
    ap.add_argument("--url", default="127.0.0.1:8001", help="Triton gRPC host:port (default %(default)s)")
    ap.add_argument("--annotate", type=Path, metavar="OUT_DIR",
                    help="also write OUT_DIR/<name>.annotated.jpg with corners, line boxes and read text")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default %(default)s)")
    a = ap.parse_args(argv)
    if a.timeout <= 0:
        ap.error("--timeout must be positive")
    try:
        return run(a.target, a.url, a.annotate, a.timeout)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
