"""Decode what clients send (JPEG/PNG/WebP bytes) into an RGB array, refusing what is not a photo."""
from __future__ import annotations

import io
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Photo:
    """A decoded photo, possibly smaller than the photo itself: points are reported in the photo's own pixels."""

    image: np.ndarray  # H x W x 3 RGB uint8
    size: tuple[int, int]  # (width, height) of the photo as sent, EXIF orientation applied

    @property
    def scale(self) -> np.ndarray:
        """(x, y) factors from the photo's pixels to `image`'s pixels."""
        return np.array([self.image.shape[1] / self.size[0], self.image.shape[0] / self.size[1]], np.float32)


# JPEG decodes in the DCT domain at 1/2, 1/4 or 1/8 of its size for a fraction of the full cost
_REDUCED_FLAGS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def decode_photo(data: bytes, at_least: int | None = None, at_most: int | None = None) -> Photo:
    """Encoded image → RGB, EXIF orientation applied, alpha dropped, 16-bit scaled.

    at_least: decode at the smallest reduced scale whose long side is still at least this (cheap for
    JPEG); at_most: then shrink (INTER_AREA) so the long side is at most this.
    """
    fmt, w, h = _probe(data)
    flag = cv2.IMREAD_COLOR
    if at_least:
        flag = next((f for k, f in _REDUCED_FLAGS if max(w, h) / k >= at_least), flag)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None:
        raise ImageError("corrupt_image", f"the {fmt} image could not be decoded (corrupt or truncated)")
    if (img.shape[0] > img.shape[1]) != (h > w) and w != h:  # EXIF orientation turned it by 90°
        w, h = h, w
    if at_most and max(img.shape[:2]) > at_most:
        f = at_most / max(img.shape[:2])
        img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    return Photo(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (w, h))


def decode_image(data: bytes) -> np.ndarray:
    """Encoded image → H x W x 3 RGB uint8 at full size (see decode_photo)."""
    return decode_photo(data).image


def _probe(data: bytes) -> tuple[str, int, int]:
    """Check what was sent from its header alone: format, width and height as stored."""
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
    return fmt, w, h


def encode_jpeg(image_rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return enc.tobytes()
