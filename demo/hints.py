"""The demo's "user": a few colour dots per page, picked from the page's colour original.

Why from the original: the demo has no person to click, and a person who knows the colours
drops a dot in the middle of a flat region (sky, roof, grass), in that region's colour. So a
dot goes where the original's colour is flat over a small neighbourhood and not gray (not on
line art, paper or screentone), dots spread over the page, and its colour is the original's
there. The hint images are `serving.hint_dots`'s, the same the Streamlit page sends.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from koala import colour
from serving import hint_dots

FLAT_WINDOW = 9            # pixels: the neighbourhood whose colour must be flat
MAX_AB_SPREAD = 2.0        # LAB units: the ab standard deviation over that window
MIN_CHROMA = 12.0          # LAB units: gray (ink, paper, screentone) takes no dot


def _local_std(x: np.ndarray) -> np.ndarray:
  mean = cv2.blur(x, (FLAT_WINDOW, FLAT_WINDOW))
  return np.sqrt(np.maximum(cv2.blur(x * x, (FLAT_WINDOW, FLAT_WINDOW)) - mean * mean, 0.0))


def pick_dots(truth_rgb: np.ndarray, count: int, seed: int = 0) -> list[hint_dots.Dot]:
  """Up to `count` dots in flat coloured places of the original, at least a sixth of the
  page's longer side apart, in the original's colour there. Same seed, same dots."""
  lab = colour.rgb_to_lab(truth_rgb).astype(np.float32)
  spread = np.maximum(_local_std(lab[..., 1]), _local_std(lab[..., 2]))
  ok = (spread <= MAX_AB_SPREAD) & (colour.chroma(lab[..., 1:]) >= MIN_CHROMA)
  margin = FLAT_WINDOW
  ok[:margin], ok[-margin:], ok[:, :margin], ok[:, -margin:] = False, False, False, False
  ys, xs = np.nonzero(ok)
  order = np.random.default_rng(seed).permutation(len(ys))
  apart = max(truth_rgb.shape[:2]) / 6.0
  dots: list[hint_dots.Dot] = []
  for i in order:
    y, x = int(ys[i]), int(xs[i])
    if all((d.x - x) ** 2 + (d.y - y) ** 2 >= apart ** 2 for d in dots):
      dots.append(hint_dots.Dot(x, y, tuple(int(c) for c in truth_rgb[y, x])))
      if len(dots) == count:
        break
  return dots


def write_hint_images(truth_dir: str, hints_dir: str, count: int) -> dict[str, list]:
  """A hint image per original in truth_dir, under the same name in hints_dir (so the client's
  --hints matches it to the gray page by stem); returns {stem: dots}."""
  from PIL import Image
  os.makedirs(hints_dir, exist_ok=True)
  picked = {}
  for name in sorted(os.listdir(truth_dir)):
    stem = os.path.splitext(name)[0]
    with Image.open(os.path.join(truth_dir, name)) as img:
      rgb = np.asarray(img.convert("RGB"))
    dots = pick_dots(rgb, count, seed=len(picked))
    with open(os.path.join(hints_dir, stem + ".png"), "wb") as f:
      f.write(hint_dots.hint_png(rgb.shape[0], rgb.shape[1], dots))
    picked[stem] = dots
  return picked
