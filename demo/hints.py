"""The demo's "user": a few colour dots per page, on bare paper, in the colours the page's colour
original has there.

Why there and in those colours: on a manga page most of the picture is white paper (SPEC,
"Manga pages"), and which colour a sky or a wall is, blue at noon or orange at dusk, only the
user knows: the demo's scenes are drawn so. A user who knows clicks on the sky in its colour,
and the dot fills the sky up to its lines (the served graph's region fill), so a dot goes to
the centre of the page's largest paper areas (spread over the page) and takes the colour
original's median colour around that spot.

The hint images are `serving.hint_dots`'s, the same the Streamlit page sends: each dot a disc
the size of the trainer's hint patch.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from serving import hint_dots

PAPER = 250                # gray level: paper (the manga SPEC's count of white paper)
AROUND = 20                # pixels: the neighbourhood a dot takes its colour from


def paper_clearance(gray: np.ndarray) -> np.ndarray:
  """Per pixel, the distance (px) to the nearest non-paper pixel: large in big bare areas."""
  paper = (np.asarray(gray) >= PAPER).astype(np.uint8)
  paper[[0, -1], :] = 0      # the page's edge bounds its paper like ink does
  paper[:, [0, -1]] = 0
  return cv2.distanceTransform(paper, cv2.DIST_L2, 5)


def paper_spots(gray: np.ndarray, count: int) -> list[tuple[int, int]]:
  """Up to `count` (y, x): the centres of the largest paper areas, greedily, at least a sixth of
  the page's longer side apart, each with bare paper at least AROUND px all around it."""
  clear = paper_clearance(gray)
  apart = max(gray.shape) / 6.0
  yy, xx = np.mgrid[:gray.shape[0], :gray.shape[1]]
  spots = []
  while len(spots) < count:
    y, x = np.unravel_index(int(np.argmax(clear)), clear.shape)
    if clear[y, x] < AROUND:
      break
    spots.append((int(y), int(x)))
    clear[(yy - y) ** 2 + (xx - x) ** 2 < apart ** 2] = 0
  return spots


def near(shape, y: int, x: int, radius: float = AROUND) -> np.ndarray:
  yy, xx = np.mgrid[:shape[0], :shape[1]]
  return (yy - y) ** 2 + (xx - x) ** 2 <= radius ** 2


def pick_dots(gray: np.ndarray, truth_rgb: np.ndarray, count: int) -> list[hint_dots.Dot]:
  """Dots on the page's largest paper areas, each in the colour original's median colour on
  the paper around it. A pure function of its inputs."""
  paper = np.asarray(gray) >= PAPER
  dots = []
  for y, x in paper_spots(gray, count):
    around = near(gray.shape, y, x) & paper
    rgb = np.median(np.asarray(truth_rgb)[around], axis=0)
    dots.append(hint_dots.Dot(x, y, tuple(int(round(v)) for v in rgb)))
  return dots


def _read(path: str, mode: str) -> np.ndarray:
  from PIL import Image
  with Image.open(path) as img:
    return np.asarray(img.convert(mode))


def write_hint_images(pages_dir: str, truth_dir: str, hints_dir: str,
                      count: int) -> dict[str, list]:
  """A hint image per gray page that has a colour original, under the same name in hints_dir
  (so the client's --hints matches it to the page by stem); returns {stem: dots}."""
  os.makedirs(hints_dir, exist_ok=True)
  picked = {}
  for name in sorted(os.listdir(pages_dir)):
    stem = os.path.splitext(name)[0]
    truth = os.path.join(truth_dir, stem + ".png")
    if not os.path.exists(truth):
      continue
    gray = _read(os.path.join(pages_dir, name), "L")
    dots = pick_dots(gray, _read(truth, "RGB"), count)
    with open(os.path.join(hints_dir, stem + ".png"), "wb") as f:
      f.write(hint_dots.hint_png(gray.shape[0], gray.shape[1], dots))
    picked[stem] = dots
  return picked
