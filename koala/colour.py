"""sRGB <-> CIE LAB (D65), and the normalisations the model uses.

This is the single source of truth for Koala's colour math. The `reference_*` functions spell
the standard out in NumPy with the constants below; `koala.colour_tf` is their TensorFlow twin
for the exported SavedModel. The public conversions the pipeline calls on every image run on
OpenCV's implementation of the same standard (sRGB, D65), an order of magnitude faster than
NumPy's cube root on this hot path (docs/benchmarks.md, "Figures behind choices in the code"); tests
hold it within 0.5 LAB units of the reference and 1 unit of scikit-image.

Conventions:
  * RGB is sRGB, float in [0, 1] (uint8 input is accepted and scaled by 1/255).
  * L is in [0, 100]; a and b are unbounded floats, clamped to [-AB_LIMIT, AB_LIMIT] before
    converting back, because out-of-gamut chroma turns into colour blotches.
  * The network sees L / 50 - 1 and predicts ab / 128, both in [-1, 1].
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

# sRGB primaries -> CIE XYZ, D65 white (IEC 61966-2-1; the values scikit-image uses).
RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423],
     [0.212671, 0.715160, 0.072169],
     [0.019334, 0.119193, 0.950227]], dtype=np.float64)
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
D65_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)

# CIE LAB's piecewise cube root: f(t) = t^(1/3) above EPSILON, a line of slope KAPPA below.
DELTA = 6.0 / 29.0
EPSILON = DELTA ** 3
KAPPA_SLOPE = 1.0 / (3.0 * DELTA ** 2)
OFFSET = 4.0 / 29.0

# sRGB transfer function.
SRGB_LINEAR_KNEE = 0.04045
SRGB_ENCODED_KNEE = 0.0031308

AB_SCALE = 128.0   # ab / AB_SCALE is the network's target in [-1, 1].
AB_LIMIT = 127.0   # ab is clamped to +-AB_LIMIT before LAB -> RGB.
L_MAX = 100.0


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
  c = np.clip(c, 0.0, 1.0)
  return np.where(c <= SRGB_ENCODED_KNEE, 12.92 * c, 1.055 * c ** (1.0 / 2.4) - 0.055)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
  """sRGB in [0, 1] (float) or uint8 -> linear light, float32.

  uint8 input goes through a 256-entry table, exact and much faster than the power law; the
  pipeline's images are uint8, so this is its hot path.
  """
  c = np.asarray(c)
  if c.dtype == np.uint8:
    return _SRGB_U8_TO_LINEAR[c]
  c = c.astype(np.float32, copy=False)
  return np.where(c <= SRGB_LINEAR_KNEE, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


_SRGB_U8_TO_LINEAR = srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
_LINEAR_TO_SRGB_TABLE = linear_to_srgb(np.linspace(0.0, 1.0, 65536)).astype(np.float32)


def _f(t: np.ndarray) -> np.ndarray:
  return np.where(t > EPSILON, np.cbrt(t), t * np.float32(KAPPA_SLOPE) + np.float32(OFFSET))


def _f_inv(t: np.ndarray) -> np.ndarray:
  return np.where(t > DELTA, t ** 3, (t - OFFSET) / KAPPA_SLOPE)


def reference_rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
  """sRGB (..., 3) in [0, 1] or uint8 -> LAB (..., 3) float32, by the formulas."""
  linear = srgb_to_linear(rgb)
  # XYZ / white, channel-first so that each channel is contiguous for the elementwise math.
  xyz = np.tensordot((RGB_TO_XYZ / D65_WHITE[:, None]).astype(np.float32), linear, axes=(1, -1))
  fx, fy, fz = _f(xyz)
  lab = np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)
  return lab.astype(np.float32, copy=False)


def _cv2_convert(values: np.ndarray, code: int) -> np.ndarray:
  """OpenCV converts (rows, cols, 3) float32 images; any (..., 3) array is viewed as one."""
  values = np.ascontiguousarray(values, dtype=np.float32)
  image = values if values.ndim == 3 else values.reshape(1, -1, 3)
  return cv2.cvtColor(image, code).reshape(values.shape)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
  """sRGB (..., 3) in [0, 1] or uint8 -> LAB (..., 3) float32."""
  rgb = np.asarray(rgb)
  unit = rgb.astype(np.float32) * np.float32(1 / 255) if rgb.dtype == np.uint8 else rgb
  return _cv2_convert(unit, cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
  """LAB (..., 3) -> sRGB (..., 3) float32 in [0, 1]; ab is clamped first, RGB is clipped."""
  lab = np.array(lab, dtype=np.float32)
  lab[..., 0] = np.clip(lab[..., 0], 0.0, L_MAX)
  lab[..., 1:] = clamp_ab(lab[..., 1:])
  return np.clip(_cv2_convert(lab, cv2.COLOR_Lab2RGB), 0.0, 1.0)


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
  """sRGB (..., 3) -> CIE Y (...) in [0, 1], float32."""
  return srgb_to_linear(rgb) @ RGB_TO_XYZ[1].astype(np.float32)


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
  """sRGB (..., 3) -> L (...) float32, without computing a and b."""
  return (116.0 * _f(relative_luminance(rgb)) - 16.0).astype(np.float32)


def rgb_to_neutral_gray(rgb: np.ndarray) -> np.ndarray:
  """sRGB (..., 3) -> (...) in [0, 1]: equal to l_to_neutral_gray(rgb_to_l(rgb)), faster.

  LAB (L, 0, 0) has the white point's chromaticity and the colour's own luminance Y, so its sRGB
  gray level is the sRGB encoding of Y: no round trip through L is needed. The encoding reads a
  65536-entry table (error < 0.0005, a tenth of a uint8 level) instead of a power per pixel.
  """
  y = np.clip(relative_luminance(rgb), 0.0, 1.0)
  return _LINEAR_TO_SRGB_TABLE[(y * np.float32(65535) + np.float32(0.5)).astype(np.uint16)]


def gray_to_l(gray: np.ndarray) -> np.ndarray:
  """An sRGB gray level (...) in [0, 1] or uint8 -> L. A gray pixel has R = G = B, so Y = linear."""
  return (116.0 * _f(srgb_to_linear(gray)) - 16.0).astype(np.float32)


def clamp_ab(ab: np.ndarray, limit: float = AB_LIMIT) -> np.ndarray:
  return np.clip(ab, -limit, limit)


def reference_lab_to_linear(lab: np.ndarray) -> np.ndarray:
  """LAB (..., 3) -> linear RGB (..., 3) float32, ab clamped, NOT clipped: outside [0, 1] is
  outside the sRGB gamut."""
  lab = np.asarray(lab, dtype=np.float32)
  l = np.clip(lab[..., 0], 0.0, L_MAX)
  a, b = (clamp_ab(lab[..., i]) for i in (1, 2))
  fy = (l + 16.0) / 116.0
  xyz = np.stack([_f_inv(fy + a / 500.0), _f_inv(fy), _f_inv(fy - b / 200.0)], axis=-1)
  return (xyz * D65_WHITE.astype(np.float32)) @ XYZ_TO_RGB.T.astype(np.float32)


def reference_lab_to_rgb(lab: np.ndarray) -> np.ndarray:
  """LAB (..., 3) -> sRGB (..., 3) float32 in [0, 1], by the formulas; ab clamped, RGB clipped."""
  return linear_to_srgb(reference_lab_to_linear(lab)).astype(np.float32)


# The gamut mapping of a coloured page. Clipping RGB (as `lab_to_rgb` does) changes L: black line
# art under a predicted colour turns gray and white paper turns tinted. A page keeps its own L
# exactly; out-of-gamut chroma gives way instead, at constant L and hue. This is the one
# definition of a coloured page's pixels: the served graph (trainer/export/page.py) gathers them
# from a table built by `page_rgb`, and the tests' NumPy reference path calls `page_rgb` itself.
GAMUT_HUES = 360          # hue bins of the max-chroma table
GAMUT_ITERATIONS = 12     # bisection steps: 2 * AB_LIMIT / 2**12 = 0.06 LAB units


def max_chroma(l: np.ndarray, hues: int = GAMUT_HUES,
               iterations: int = GAMUT_ITERATIONS) -> np.ndarray:
  """(N,) L -> (N, hues) float32: the largest in-gamut chroma at each L along `hues` equally
  spaced hue angles (bisection on linear RGB within [0, 1]); 0 at L = 0 and L = 100.

  In gamut means within [0, 1] exactly: a slack of 1e-4 in linear RGB let the sRGB matrix's
  mixed signs put black line art under a saturated blue at (0, 0, 4).
  """
  l = np.asarray(l, np.float32)[:, None] * np.ones((1, hues), np.float32)
  angle = np.arange(hues, dtype=np.float32) * np.float32(2.0 * np.pi / hues)
  cos, sin = np.cos(angle)[None, :], np.sin(angle)[None, :]
  lo, hi = np.zeros_like(l), np.full_like(l, 2.0 * AB_LIMIT)
  for _ in range(iterations):
    mid = (lo + hi) / np.float32(2.0)
    linear = reference_lab_to_linear(np.stack([l, mid * cos, mid * sin], axis=-1))
    ok = np.all((linear >= 0.0) & (linear <= 1.0), axis=-1)
    lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
  return lo


def gamut_map_ab(ab: np.ndarray, l_index: np.ndarray, chroma_table: np.ndarray) -> np.ndarray:
  """ab (..., 2), clamped, then scaled down into the gamut at constant L and hue -> (..., 2).

  chroma_table = max_chroma(levels) and l_index picks each pixel's level. The smaller of the two
  neighbouring hue bins is used, so the result stays inside.
  """
  ab = np.asarray(ab, np.float32)
  hues = chroma_table.shape[1]
  a, b = clamp_ab(ab[..., 0]), clamp_ab(ab[..., 1])
  c = np.sqrt(a * a + b * b)
  pos = np.mod(np.arctan2(b, a), np.float32(2.0 * np.pi)) / np.float32(2.0 * np.pi / hues)
  lo = np.floor(pos).astype(np.int64) % hues
  limit = np.minimum(chroma_table[l_index, lo], chroma_table[l_index, (lo + 1) % hues])
  scale = np.minimum(np.float32(1.0), limit / np.maximum(c, np.float32(1e-6)))
  return np.stack([a * scale, b * scale], axis=-1)


@functools.lru_cache(maxsize=1)
def gray_level_max_chroma() -> np.ndarray:
  """(256, GAMUT_HUES): `max_chroma` at the L of every uint8 gray level."""
  table = max_chroma(gray_to_l(np.arange(256, dtype=np.uint8)))
  table.flags.writeable = False
  return table


def page_rgb(gray: np.ndarray, ab: np.ndarray) -> np.ndarray:
  """A coloured page: uint8 gray (...) + ab (..., 2) in LAB units -> uint8 sRGB (..., 3).

  L is the gray level's own (`gray_to_l`), so line art and lettering keep their exact lightness;
  ab is rounded to whole units (the precision the training records store it at, and what lets
  the served graph read every pixel from one 256**3 table), clamped and brought into the gamut
  at that L (`gamut_map_ab`); sRGB is rounded to uint8.
  """
  gray = np.asarray(gray, np.uint8)
  ab = np.floor(np.asarray(ab, np.float32) + np.float32(0.5))
  ab = gamut_map_ab(ab, gray, gray_level_max_chroma())
  lab = np.concatenate([gray_to_l(gray)[..., None], ab], axis=-1)
  return to_uint8(reference_lab_to_rgb(lab))


# The composition of a coloured manga page. On white paper (L = 100) the sRGB gamut holds no
# chroma at all, so `page_rgb`, which keeps the page's L, can put no colour there: a skin tone on
# paper comes out white. Colourists lay flat colours on a layer under the line art and set the
# line art to Multiply (paper x colour = colour, ink x colour = ink); Style2Paints multiplies the
# lines back in over its prediction the same way. `manga_page_rgb` does exactly that with the
# predicted ab: the flat colour is `paper_colour(ab)`, the lightest colour of that chroma (L
# lowered from 100 only as far as the chroma needs to fit the gamut, `manga_lab`), and the page
# multiplies it, in sRGB as a paint program's Multiply layer does. So black stays exactly black,
# paper with ab = 0 stays the page, ink lines and lettering only get darker (never lighter, never
# a coloured fringe worth the name: a gray-40 line pixel under a saturated red is (40, 15, 13)),
# and screentone is kept as texture under the colour: its black dots stay black and the paper
# between them takes the colour, as on a printed colour page, which a reader's eye averages at
# reading distance. Dissolving the screen would need the screen's pattern to be told from the
# drawing's, which only a full-resolution network could learn.
COMPOSE_KEEP_L = "keep_l"        # gray jobs: the page's own L, ab fitted at that L (`page_rgb`)
COMPOSE_MANGA = "manga"          # manga jobs: `manga_page_rgb`
COMPOSITIONS = (COMPOSE_KEEP_L, COMPOSE_MANGA)
MANGA_L_STEPS = 1024             # L grid of the lightness search: 0.1 L units a step


def composition_for(rendering: str) -> str:
  """The page composition of a job trained on `rendering` records (koala.schema.RENDERING)."""
  return COMPOSE_KEEP_L if rendering == "gray" else COMPOSE_MANGA


@functools.lru_cache(maxsize=1)
def _l_grid_max_chroma() -> tuple[np.ndarray, np.ndarray]:
  """(L grid (MANGA_L_STEPS,), max_chroma on it (MANGA_L_STEPS, GAMUT_HUES)), read-only."""
  grid = np.linspace(0.0, L_MAX, MANGA_L_STEPS).astype(np.float32)
  table = max_chroma(grid)
  grid.flags.writeable = table.flags.writeable = False
  return grid, table


def manga_lab(l: np.ndarray, ab: np.ndarray) -> np.ndarray:
  """L (...) and ab (..., 2) -> in-gamut LAB (..., 3) by the manga rule above (L never rises)."""
  grid, table = _l_grid_max_chroma()
  l = np.clip(np.asarray(l, np.float32), 0.0, L_MAX)
  ab = np.asarray(ab, np.float32)
  a, b = clamp_ab(ab[..., 0]), clamp_ab(ab[..., 1])
  c = np.sqrt(a * a + b * b)
  hues = table.shape[1]
  pos = np.mod(np.arctan2(b, a), np.float32(2.0 * np.pi)) / np.float32(2.0 * np.pi / hues)
  h0 = np.floor(pos).astype(np.int64) % hues
  h1 = (h0 + 1) % hues
  limit = lambda i: np.minimum(table[i, h0], table[i, h1])
  top = np.floor(l / L_MAX * (MANGA_L_STEPS - 1)).astype(np.int64)   # grid L <= the page's
  # The hue's cusp (the L of most chroma) at or below the page's L, from the per-hue argmax.
  cusp = np.minimum(np.argmax(np.minimum(table, np.roll(table, -1, axis=1)), axis=0)[h0], top)
  # Above the cusp max chroma falls with L: bisect for the highest grid L that still holds c.
  lo, hi = cusp, top
  linear = reference_lab_to_linear(np.stack([l, a, b], axis=-1))
  fits = np.all((linear >= 0.0) & (linear <= 1.0), axis=-1)   # in gamut at the page's own L
  for _ in range(int(np.ceil(np.log2(MANGA_L_STEPS))) + 1):
    mid = (lo + hi + 1) // 2
    ok = limit(mid) >= c
    lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid - 1)
  out_l = np.where(fits, l, grid[lo])
  scale = np.where(fits, np.float32(1.0), np.minimum(
      np.float32(1.0), limit(lo) / np.maximum(c, np.float32(1e-6))))
  return np.stack([out_l, a * scale, b * scale], axis=-1)


def paper_colour(ab: np.ndarray) -> np.ndarray:
  """ab (..., 2) in LAB units -> the flat colour (..., 3) sRGB float in [0, 1] that `ab` paints
  on white paper: `manga_lab` at L = 100."""
  ab = np.asarray(ab, np.float32)
  return reference_lab_to_rgb(manga_lab(np.full(ab.shape[:-1], L_MAX, np.float32), ab))


@functools.lru_cache(maxsize=1)
def paper_colour_table() -> np.ndarray:
  """(256 * 256, 3) float32, read-only: `paper_colour` of every whole a, b in [-128, 127], at
  index (a + 128) * 256 + b + 128 (how a manga page's flats are looked up: ab is rounded to whole
  units, the precision the training records store it at)."""
  ab = np.arange(256, dtype=np.float32) - 128.0
  a, b = np.meshgrid(ab, ab, indexing="ij")
  table = paper_colour(np.stack([a.ravel(), b.ravel()], -1)).astype(np.float32)
  table.flags.writeable = False
  return table


def paper_colour_index(ab: np.ndarray) -> np.ndarray:
  """ab (..., 2) in LAB units -> int64 index (...) into `paper_colour_table`: rounded, clamped."""
  i = np.clip(np.floor(np.asarray(ab, np.float32) + np.float32(128.5)), 0, 255).astype(np.int64)
  return i[..., 0] * 256 + i[..., 1]


def manga_page_rgb(gray: np.ndarray, ab: np.ndarray) -> np.ndarray:
  """A coloured manga page: uint8 gray (...) + ab (..., 2) in LAB units -> uint8 sRGB (...,
  3): the page multiplies `paper_colour(ab)` (the colour reaches the paper; ink stays ink). ab
  is rounded to whole units first, as in `page_rgb`, so the served graph reads every pixel from
  one 256**3 table."""
  gray = np.asarray(gray, np.uint8)
  ab = np.floor(np.asarray(ab, np.float32) + np.float32(0.5))
  return to_uint8(paper_colour(ab) * (gray.astype(np.float32)[..., None] / np.float32(255.0)))


def compose_page(gray: np.ndarray, ab: np.ndarray, composition: str = COMPOSE_KEEP_L) -> np.ndarray:
  """`page_rgb` or `manga_page_rgb`, by name (a job's composition, see `composition_for`)."""
  if composition == COMPOSE_KEEP_L:
    return page_rgb(gray, ab)
  if composition == COMPOSE_MANGA:
    return manga_page_rgb(gray, ab)
  raise ValueError(f"unknown composition {composition!r}; choose one of {COMPOSITIONS}")


def l_to_neutral_gray(l: np.ndarray) -> np.ndarray:
  """L (...) -> the sRGB gray (...) in [0, 1] of LAB (L, 0, 0).

  This is what the embedder sees, at training and at serving time alike: at serving time all we
  have is a gray page, so preprocessing shows the embedder the colour image's own lightness
  rendered neutral, not some other grayscale conversion (the original project mixed Rec.601 gray for
  the embedder with LAB L for the encoder, a mismatch a published replication lists as a flaw).
  """
  fy = (np.clip(np.asarray(l, np.float32), 0.0, L_MAX) + 16.0) / 116.0
  return linear_to_srgb(_f_inv(fy)).astype(np.float32)


def to_uint8(unit: np.ndarray) -> np.ndarray:
  """[0, 1] float -> uint8, rounding to nearest."""
  return np.clip(np.rint(np.asarray(unit) * 255.0), 0, 255).astype(np.uint8)


def normalize_l(l: np.ndarray) -> np.ndarray:
  return np.asarray(l, np.float32) / (L_MAX / 2.0) - 1.0


def denormalize_l(l_norm: np.ndarray) -> np.ndarray:
  return (np.asarray(l_norm, np.float32) + 1.0) * (L_MAX / 2.0)


def normalize_ab(ab: np.ndarray) -> np.ndarray:
  return np.asarray(ab, np.float32) / AB_SCALE


def denormalize_ab(ab_norm: np.ndarray) -> np.ndarray:
  return np.asarray(ab_norm, np.float32) * AB_SCALE


def chroma(ab: np.ndarray) -> np.ndarray:
  """Per-pixel chroma sqrt(a^2 + b^2) of (..., 2) ab."""
  ab = np.asarray(ab, np.float32)
  return np.sqrt(ab[..., 0] ** 2 + ab[..., 1] ** 2)
