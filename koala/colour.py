"""sRGB <-> CIE LAB (D65), and the normalisations the model uses.

This is the single source of truth for Koala's colour math. The `reference_*` functions spell
the standard out in NumPy with the constants below; `koala.colour_tf` is their TensorFlow twin
for the exported SavedModel. The public conversions the pipeline calls on every image run on
OpenCV's implementation of the same standard (sRGB, D65), which is ~13x faster than NumPy's
cube root on this hot path; tests hold it within 0.5 LAB units of the reference and 1 unit of
scikit-image.

Conventions:
  * RGB is sRGB, float in [0, 1] (uint8 input is accepted and scaled by 1/255).
  * L is in [0, 100]; a and b are unbounded floats, clamped to [-AB_LIMIT, AB_LIMIT] before
    converting back, because out-of-gamut chroma turns into colour blotches.
  * The network sees L / 50 - 1 and predicts ab / 128, both in [-1, 1].
"""
from __future__ import annotations

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


def reference_lab_to_rgb(lab: np.ndarray) -> np.ndarray:
  """LAB (..., 3) -> sRGB (..., 3) float32 in [0, 1], by the formulas; ab clamped, RGB clipped."""
  lab = np.asarray(lab, dtype=np.float32)
  l = np.clip(lab[..., 0], 0.0, L_MAX)
  a, b = (clamp_ab(lab[..., i]) for i in (1, 2))
  fy = (l + 16.0) / 116.0
  xyz = np.stack([_f_inv(fy + a / 500.0), _f_inv(fy), _f_inv(fy - b / 200.0)], axis=-1)
  linear = (xyz * D65_WHITE.astype(np.float32)) @ XYZ_TO_RGB.T.astype(np.float32)
  return linear_to_srgb(linear).astype(np.float32)


def l_to_neutral_gray(l: np.ndarray) -> np.ndarray:
  """L (...) -> the sRGB gray (...) in [0, 1] of LAB (L, 0, 0).

  This is what the embedder sees, at training and at serving time alike: at serving time all we
  have is a gray page, so preprocessing shows the embedder the colour image's own lightness
  rendered neutral, not some other grayscale conversion (the seed mixed Rec.601 gray for the
  embedder with LAB L for the encoder, a mismatch a published replication lists as a flaw).
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
