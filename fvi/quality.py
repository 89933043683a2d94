"""Capture quality of a found card: the reasons a user should retake the photo, as warnings.

Measured in the cropper step (it has the photo and the corners) and carried to assemble as a small vector, so
the measures travel through Triton as numbers, never as pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from fvi.geometry import warp_card
from fvi.schema import Warning

VIEW = (512, 320)  # (width, height) of the flat card the measures are taken on
MEASURES: tuple[str, ...] = ("card_long_side_px", "corner_margin_px", "sharpness", "glare_fraction", "brightness")
# A card whose long side spans fewer photo pixels than this is upsampled to read it: small print blurs.
MIN_CARD_LONG_SIDE_PX = 400.0
# Variance of the Laplacian of the grey 512 x 320 card below this: defocus or motion blur (synthetic
# cards: median ~760, 5th percentile ~56; the same blurred with sigma 1.3: median ~41).
MIN_SHARPNESS = 50.0
# Fraction of blown-out, colourless card pixels above this: a glare spot is hiding print.
MAX_GLARE_FRACTION = 0.02
# mean grey of the flat card; synthetic cards in normal light measure 116-235
MIN_BRIGHTNESS = 75.0
# The codes warnings() gives: each asks the user for another photo, so a front end that gets none of them has a
# capture it can accept (bench.evaluate reports what it reads on those photos and on the rest).
RETAKE_CODES: frozenset[str] = frozenset({"cut_corner", "small_card", "blur", "glare", "low_light"})


def card_view(image_rgb: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """The card at these corners (photo pixels), warped flat to VIEW: what its light and sharpness are judged on."""
    return cv2.resize(warp_card(image_rgb, corners), VIEW, interpolation=cv2.INTER_AREA)


def measure(image_shape: tuple[int, ...], corners: np.ndarray, card_rgb: np.ndarray) -> np.ndarray:
    """(len(MEASURES),) float32 for one found card, judged on its VIEW-sized flat view (card_view: cheap)."""
    h, w = image_shape[:2]
    c = np.asarray(corners, np.float64).reshape(4, 2)
    edges = np.linalg.norm(c - np.roll(c, -1, axis=0), axis=1)
    long_side = float(max(edges[0] + edges[2], edges[1] + edges[3]) / 2)
    margin = float(min(c[:, 0].min(), c[:, 1].min(), w - 1 - c[:, 0].max(), h - 1 - c[:, 1].max()))
    gray = cv2.cvtColor(card_rgb, cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    darkest = np.minimum(np.minimum(card_rgb[..., 0], card_rgb[..., 1]), card_rgb[..., 2])
    glare = float(np.count_nonzero(darkest >= 245)) / darkest.size  # every channel blown out: white, not a colour
    return np.array([long_side, margin, sharpness, glare, float(gray.mean())], np.float32)


def warnings(values: np.ndarray) -> list[Warning]:
    q = dict(zip(MEASURES, np.asarray(values, np.float64).reshape(-1).tolist()))
    found: list[Warning] = []
    if q["corner_margin_px"] < 0:
        found.append(Warning("cut_corner", [], "part of the card lies outside the photo; photograph the whole card"))
    if q["card_long_side_px"] < MIN_CARD_LONG_SIDE_PX:
        found.append(Warning("small_card", [], "the card is small in the photo; move closer so it fills most of the frame"))
    if q["sharpness"] < MIN_SHARPNESS:
        found.append(Warning("blur", [], "the card is blurred; hold still and let the camera focus"))
    if q["glare_fraction"] > MAX_GLARE_FRACTION:
        found.append(Warning("glare", [], "a glare spot covers part of the card; tilt it away from the light"))
    if q["brightness"] < MIN_BRIGHTNESS:
        found.append(Warning("low_light", [], "the photo is dark; take it in better light"))
    return found
