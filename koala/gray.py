"""When an image counts as gray: the one rule that the pipeline (a gray image makes no training
record) and serving (a page already in colour is kept as it is) share.

The image is letterboxed to the colorizer's side and converted to LAB, as the records store it;
its chroma is taken at a high percentile over the picture (padding excluded), so a small coloured
area is enough to count as colour while JPEG noise on a gray scan is not.
"""
from __future__ import annotations

import numpy as np

from koala import colour, images, schema

DEFAULT_GRAY_CHROMA = 6.0     # LAB units: JPEG noise on a gray scan stays below this.
GRAY_PERCENTILE = 99.0        # so that a small coloured area is enough to count as colour.


def lab_at(rgb: np.ndarray, size: int) -> np.ndarray:
  """The letterboxed LAB tensor of an RGB image at `size` (resize in sRGB, then convert)."""
  return colour.rgb_to_lab(images.letterbox(rgb, size))


def image_chroma(ab: np.ndarray, height: int, width: int) -> float:
  """How colourful an image is: a high percentile of per-pixel chroma, padding excluded."""
  inside = images.unletterbox(ab, height, width)
  return float(np.percentile(colour.chroma(inside), GRAY_PERCENTILE))


def is_colour(rgb: np.ndarray, threshold: float = DEFAULT_GRAY_CHROMA) -> bool:
  """True when a decoded RGB image is in colour by the pipeline's own test."""
  lab = lab_at(rgb, schema.IMAGE_SIZE)
  return image_chroma(lab[..., 1:], *rgb.shape[:2]) >= threshold
