"""`?debug=1`: the photo with what the ensemble found drawn on it, returned in the response only.

The drawing is client.annotate's (the CLI draws the same picture); the photo is decoded with the
core's decode_image so EXIF orientation matches the corners Triton computed. Everything stays in
memory: nothing here is logged or written to disk.
"""
from __future__ import annotations

import base64

import cv2
import numpy as np

from client.annotate import annotate
from fvi.image_io import decode_image
from gateway.models import AnnotatedImage

JPEG_QUALITY = 85


def annotated_image(data: bytes, result: dict, corners: np.ndarray | None, line_meta: np.ndarray | None) -> AnnotatedImage:
    """CPU work (decode, draw, encode): run it in a worker thread."""
    drawn = annotate(decode_image(data), result, corners, line_meta)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return AnnotatedImage(data_base64=base64.b64encode(jpeg.tobytes()).decode("ascii"))
