"""Decode what clients send (JPEG/PNG/WebP bytes) into an RGB array, refusing what is not a photo."""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_BYTES = 20 * 2**20
MAX_PIXELS = 40_000_000  # a 40 MP photo; larger is a decompression bomb or not a phone capture
MIN_SIDE = 64
ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "TIFF"}


class ImageError(ValueError):
    """A client error: `code` is machine-readable, the message says what was wrong and what is accepted."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def decode_image(data: bytes) -> np.ndarray:
    """Encoded image → H x W x 3 RGB uint8, EXIF orientation applied, alpha dropped, 16-bit scaled."""
    if not data:
        raise ImageError("empty_image", "the image is empty; send JPEG, PNG or WebP bytes")
    if len(data) > MAX_BYTES:
        raise ImageError("image_too_large", f"the image is {len(data)} bytes; at most {MAX_BYTES} are accepted")
    try:
        with Image.open(io.BytesIO(data)) as probe:  # reads the header only
            fmt, (w, h) = probe.format, probe.size
    except Image.DecompressionBombError:  # the header claims far more pixels than any photo
        raise ImageError("too_many_pixels", f"the image is over {MAX_PIXELS // 1_000_000} megapixels; "
                         "send a smaller photo") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError("not_an_image", "the bytes are not a readable image; send JPEG, PNG or WebP") from e
    if fmt not in ACCEPTED_FORMATS:
        raise ImageError("unsupported_format", f"{fmt} images are not accepted; send JPEG, PNG or WebP")
    if w * h > MAX_PIXELS:
        raise ImageError("too_many_pixels", f"the image is {w}x{h}; at most {MAX_PIXELS // 1_000_000} megapixels are accepted")
    if min(w, h) < MIN_SIDE:
        raise ImageError("image_too_small", f"the image is {w}x{h}; both sides must be at least {MIN_SIDE} pixels")
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # applies EXIF orientation, drops alpha, scales 16-bit
    if img is None:
        raise ImageError("corrupt_image", f"the {fmt} image could not be decoded (corrupt or truncated)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def encode_jpeg(image_rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return enc.tobytes()
