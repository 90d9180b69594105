"""The TensorFlow twin of `koala.colour`: sRGB <-> CIE LAB (D65) as graph ops.

Why a twin: the exported SavedModel must carry the whole path (decode -> L -> colorize ->
LAB -> RGB -> PNG) in TensorFlow ops, so that TF Serving runs it with no Python. Every constant
is imported from `koala.colour`, the single source of truth, and tests/test_colour_tf.py holds
the two implementations equal within 1 LAB unit (and both against scikit-image).

Same conventions as `koala.colour`: RGB is sRGB float in [0, 1] (uint8 is scaled by 1/255),
L in [0, 100], ab clamped to +-AB_LIMIT before converting back. All maths is float32.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from koala import colour

# (3, 3) matrices for `x @ M` on (..., 3) tensors, white normalisation folded in.
_RGB_TO_XYZN = (colour.RGB_TO_XYZ.T / colour.D65_WHITE[None, :]).astype(np.float32)
_XYZN_TO_RGB = (colour.XYZ_TO_RGB.T * colour.D65_WHITE[:, None]).astype(np.float32)
_Y_ROW = colour.RGB_TO_XYZ[1].astype(np.float32)


def _unit_float(rgb) -> tf.Tensor:
  rgb = tf.convert_to_tensor(rgb)
  if rgb.dtype == tf.uint8:
    return tf.cast(rgb, tf.float32) / 255.0
  return tf.cast(rgb, tf.float32)


def _matmul_last(x: tf.Tensor, m: np.ndarray) -> tf.Tensor:
  """(..., 3) @ (3, 3) without tensordot's reshapes of unknown shapes."""
  return tf.stack([x[..., 0] * m[0, j] + x[..., 1] * m[1, j] + x[..., 2] * m[2, j]
                   for j in range(3)], axis=-1)


def srgb_to_linear(c: tf.Tensor) -> tf.Tensor:
  return tf.where(c <= colour.SRGB_LINEAR_KNEE, c / 12.92,
                  tf.pow((tf.maximum(c, colour.SRGB_LINEAR_KNEE) + 0.055) / 1.055, 2.4))


def linear_to_srgb(c: tf.Tensor) -> tf.Tensor:
  c = tf.clip_by_value(c, 0.0, 1.0)
  return tf.where(c <= colour.SRGB_ENCODED_KNEE, 12.92 * c,
                  1.055 * tf.pow(tf.maximum(c, colour.SRGB_ENCODED_KNEE), 1.0 / 2.4) - 0.055)


def _f(t: tf.Tensor) -> tf.Tensor:
  cbrt = tf.pow(tf.maximum(t, colour.EPSILON), 1.0 / 3.0)
  return tf.where(t > colour.EPSILON, cbrt, t * colour.KAPPA_SLOPE + colour.OFFSET)


def _f_inv(t: tf.Tensor) -> tf.Tensor:
  return tf.where(t > colour.DELTA, t * t * t, (t - colour.OFFSET) / colour.KAPPA_SLOPE)


_U8_TO_LINEAR = colour.srgb_to_linear(np.arange(256, dtype=np.uint8))   # koala.colour's table


def _linear(rgb) -> tf.Tensor:
  """sRGB -> linear light; uint8 through koala.colour's 256-entry table (a gather, not a power:
  a page-sized hint image is millions of pixels)."""
  rgb = tf.convert_to_tensor(rgb)
  if rgb.dtype == tf.uint8:
    return tf.gather(tf.constant(_U8_TO_LINEAR), tf.cast(rgb, tf.int32))
  return srgb_to_linear(_unit_float(rgb))


def rgb_to_lab(rgb) -> tf.Tensor:
  """sRGB (..., 3) in [0, 1] or uint8 -> LAB (..., 3) float32."""
  xyz = _matmul_last(_linear(rgb), _RGB_TO_XYZN)
  fx, fy, fz = _f(xyz[..., 0]), _f(xyz[..., 1]), _f(xyz[..., 2])
  return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def rgb_to_l(rgb) -> tf.Tensor:
  """sRGB (..., 3) -> L (...), without computing a and b."""
  linear = srgb_to_linear(_unit_float(rgb))
  y = linear[..., 0] * _Y_ROW[0] + linear[..., 1] * _Y_ROW[1] + linear[..., 2] * _Y_ROW[2]
  return 116.0 * _f(y) - 16.0


def gray_to_l(gray) -> tf.Tensor:
  """An sRGB gray level (...) in [0, 1] or uint8 -> L."""
  return 116.0 * _f(srgb_to_linear(_unit_float(gray))) - 16.0


def clamp_ab(ab: tf.Tensor, limit: float = colour.AB_LIMIT) -> tf.Tensor:
  return tf.clip_by_value(ab, -limit, limit)


def lab_to_linear(lab) -> tf.Tensor:
  """LAB (..., 3) -> linear RGB (..., 3), ab clamped, NOT clipped: out of [0, 1] = out of gamut."""
  lab = tf.cast(lab, tf.float32)
  l = tf.clip_by_value(lab[..., 0], 0.0, colour.L_MAX)
  a, b = clamp_ab(lab[..., 1]), clamp_ab(lab[..., 2])
  fy = (l + 16.0) / 116.0
  xyz = tf.stack([_f_inv(fy + a / 500.0), _f_inv(fy), _f_inv(fy - b / 200.0)], axis=-1)
  return _matmul_last(xyz, _XYZN_TO_RGB)


def lab_to_rgb(lab) -> tf.Tensor:
  """LAB (..., 3) -> sRGB (..., 3) float32 in [0, 1]; ab is clamped, RGB is clipped."""
  return linear_to_srgb(lab_to_linear(lab))


def l_to_neutral_gray(l) -> tf.Tensor:
  """L (...) -> the sRGB gray (...) in [0, 1] of LAB (L, 0, 0): what the embedder sees."""
  fy = (tf.clip_by_value(tf.cast(l, tf.float32), 0.0, colour.L_MAX) + 16.0) / 116.0
  return linear_to_srgb(_f_inv(fy))


def to_uint8(unit: tf.Tensor) -> tf.Tensor:
  """[0, 1] float -> uint8, rounding to nearest."""
  return tf.cast(tf.clip_by_value(tf.round(unit * 255.0), 0.0, 255.0), tf.uint8)


def normalize_l(l: tf.Tensor) -> tf.Tensor:
  return tf.cast(l, tf.float32) / (colour.L_MAX / 2.0) - 1.0


def denormalize_ab(ab_norm: tf.Tensor) -> tf.Tensor:
  return tf.cast(ab_norm, tf.float32) * colour.AB_SCALE
