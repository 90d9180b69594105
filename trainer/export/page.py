"""One page's way through the SavedModel, as TensorFlow ops: bytes -> gray -> model inputs, and
predicted ab -> coloured PNG at the page's own resolution.

Why TF ops and not Pillow/OpenCV: TF Serving runs a SavedModel with no Python, so decoding,
resizing, colour conversion and PNG encoding must all be graph ops. Each step mirrors the
NumPy path that made the training records (`koala.images`, `pipeline.preprocess`), and
tests/test_export_ops.py holds them equal:

  * decode: PNG, JPEG, WebP, BMP and GIF natively, the formats of `koala.images.FORMATS`, which
    the pipeline accepts too; an animation's first frame; gray or colour; a JPEG turned upright
    by its EXIF orientation; alpha is composited on white paper. Every check on the bytes (the
    format, the pixel cap on what will be decoded, GIF frames included) runs BEFORE decoding,
    so a 60000 x 60000 "bomb" is refused without allocating it (`trainer.export.image`).
  * gray: a gray page stays as it is; a colour page becomes the neutral gray of its own L
    (`koala.colour_tf`), as the pipeline shows the embedder.
  * letterbox: `koala.images.letterbox_box`'s formula, area resampling when shrinking
    (no moire from screentone), bilinear when enlarging, white padding, uint8 rounding as
    OpenCV does.
  * output: ab is cut out of the letterbox, bilinear-upsampled to the page, clamped, and put on
    the page's own L at full resolution, so line art and lettering stay crisp.

Speed: an A4 page at 200 dpi has 3.9 Mpx, and TensorFlow runs one op at a time over whole
tensors, so a float LAB -> sRGB chain (about 25 ops) costs more than the network. The page's L
takes only 256 values (it comes from a uint8 gray), so LAB -> sRGB is one gather from a table
indexed by (gray, round(a), round(b)), computed once at export by `koala.colour.page_rgb`, the
one definition of a coloured page's pixels (the tests' NumPy reference path calls it too).
Rounding ab to whole units is the precision the training records store ab at anyway. The
table also brings out-of-gamut colours back at constant L and hue instead of clipping RGB, so
black line art stays black and white paper white under any predicted colour.

A job trained on manga renderings composes its pages by `trainer.export.fill` instead (the page
multiplies a layer of flat colours: the model's, stopped at the ink lines, and the user's dots
filling their regions); `page_png` takes the composition as a function.
"""
from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from koala import colour, colour_tf
from trainer.export import image

AB_OFFSET = 128          # table index of ab = round(ab) + AB_OFFSET
TABLE_SIDE = 256


def composite_on_white(colour: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
  """uint8 colour (H, W, C) over white paper with uint8 alpha (H, W, 1) -> uint8 (H, W, C)."""
  a = tf.cast(alpha, tf.float32) / 255.0
  out = tf.cast(colour, tf.float32) * a + 255.0 * (1.0 - a)
  return tf.cast(tf.round(out), tf.uint8)


def rgb_to_gray_u8(rgb: tf.Tensor) -> tf.Tensor:
  """uint8 (H, W, 3) -> uint8 (H, W): the neutral gray of the image's own L.

  A gray page stored as RGB (R = G = B, as scans often are) is taken as it is, which is exact
  and skips the float colour maths on millions of pixels.
  """
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  is_gray = tf.reduce_all(tf.logical_and(tf.equal(r, g), tf.equal(g, b)))
  return tf.cond(is_gray, lambda: r,
                 lambda: colour_tf.to_uint8(colour_tf.l_to_neutral_gray(colour_tf.rgb_to_l(rgb))))


def decode_gray(data: tf.Tensor, max_pixels: int) -> tf.Tensor:
  """Image file bytes -> uint8 gray (H, W), upright; InvalidArgument for bad, truncated or huge
  files (`trainer.export.image.decode`)."""
  img = image.decode(data, max_pixels)
  channels = tf.shape(img)[-1]
  branches = [
      lambda: img[..., 0],
      lambda: composite_on_white(img[..., :1], img[..., 1:2])[..., 0],
      lambda: rgb_to_gray_u8(img[..., :3]),
      lambda: rgb_to_gray_u8(composite_on_white(img[..., :3], img[..., 3:4])),
  ]
  gray = tf.switch_case(tf.clip_by_value(channels - 1, 0, 3), branches)
  gray.set_shape([None, None])
  return gray


def letterbox_box(height: tf.Tensor, width: tf.Tensor, size: int):
  """`koala.images.letterbox_box` in TF: (top, left, h, w) int32 (float64 maths, half-to-even
  rounding, exactly as Python's round())."""
  h = tf.cast(height, tf.float64)
  w = tf.cast(width, tf.float64)
  scale = size / tf.maximum(h, w)
  one, side = tf.constant(1.0, tf.float64), tf.constant(size, tf.float64)
  bh = tf.cast(tf.minimum(side, tf.maximum(one, tf.round(h * scale))), tf.int32)
  bw = tf.cast(tf.minimum(side, tf.maximum(one, tf.round(w * scale))), tf.int32)
  return (size - bh) // 2, (size - bw) // 2, bh, bw


def resize(image: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
  """float (H, W, C) -> (height, width, C): area when shrinking (no moire), bilinear when
  enlarging; `koala.images.resize`'s rule."""
  shape = tf.shape(image)
  shrinking = height * width < shape[0] * shape[1]
  size = tf.stack([height, width])
  return tf.cond(shrinking,
                 lambda: tf.image.resize(image, size, method="area"),
                 lambda: tf.image.resize(image, size, method="bilinear"))


def letterbox_u8(gray: tf.Tensor, size: int) -> tf.Tensor:
  """gray (H, W), uint8 or its float32 levels -> uint8 (size, size): fit, keep aspect, centre on
  white; like `koala.images.letterbox` (OpenCV rounds its uint8 output, and so do we)."""
  shape = tf.shape(gray)
  top, left, bh, bw = letterbox_box(shape[0], shape[1], size)
  scaled = resize(tf.cast(gray, tf.float32)[..., None], bh, bw)[..., 0]
  scaled = tf.clip_by_value(tf.round(scaled), 0.0, 255.0)
  padded = tf.pad(scaled, [[top, size - bh - top], [left, size - bw - left]],
                  constant_values=255.0)
  padded.set_shape([size, size])
  return tf.cast(padded, tf.uint8)


def gray_l_table() -> np.ndarray:
  """(256,) float32: L of each sRGB gray level, from `koala.colour` itself."""
  return colour.gray_to_l(np.arange(256, dtype=np.uint8))


def gray_to_l(gray_u8: tf.Tensor) -> tf.Tensor:
  """uint8 gray -> L in [0, 100] float32, by a 256-entry table (exact for 8-bit input)."""
  return tf.gather(tf.constant(gray_l_table()), tf.cast(gray_u8, tf.int32))


@functools.lru_cache(maxsize=1)
def lab_rgb_table(levels_per_chunk: int = 16) -> np.ndarray:
  """(256**3, 3) uint8: `koala.colour.page_rgb` of every gray level and whole a, b in [-128,
  127] (ab clamped, brought into the gamut at constant L and hue, so the output keeps the page's
  L exactly). The graph only gathers from it, so the served pixels and the NumPy reference path
  have one definition, the one in `koala.colour`."""
  ab = np.arange(TABLE_SIDE, dtype=np.float32) - AB_OFFSET
  a, b = np.meshgrid(ab, ab, indexing="ij")
  ab = np.tile(np.stack([a.ravel(), b.ravel()], axis=-1), (levels_per_chunk, 1))
  chunks = []
  for start in range(0, TABLE_SIDE, levels_per_chunk):   # a few levels at a time: small temporaries
    gray = np.repeat(np.arange(start, start + levels_per_chunk, dtype=np.uint8), TABLE_SIDE ** 2)
    chunks.append(colour.page_rgb(gray, ab))
  table = np.concatenate(chunks)
  table.flags.writeable = False
  return table


def ab_box(gray_u8: tf.Tensor, ab_square: tf.Tensor) -> tf.Tensor:
  """The model's letterboxed ab (S, S, 2) in LAB units -> the page's box of it (h, w, 2),
  clamped (while small: interpolation stays inside the clamp, so no page-sized op clips)."""
  shape = tf.shape(gray_u8)
  top, left, bh, bw = letterbox_box(shape[0], shape[1], ab_square.shape[0])
  return colour_tf.clamp_ab(ab_square[top:top + bh, left:left + bw])


def colour_page(gray_u8: tf.Tensor, box: tf.Tensor, table: tf.Tensor) -> tf.Tensor:
  """A gray job's page: gray (H, W) uint8 + the model's ab over the page's box (`ab_box`) ->
  uint8 RGB (H, W, 3): ab upsampled bilinearly to (H, W) and rounded, the page's own gray gives
  L at full resolution, one gather from `lab_rgb_table`."""
  shape = tf.shape(gray_u8)
  # +0.5 then truncation rounds (every page-sized op costs tens of milliseconds on an A4 page).
  ab = tf.cast(tf.image.resize(box, shape[:2], method="bilinear") + (AB_OFFSET + 0.5), tf.int32)
  index = (tf.cast(gray_u8, tf.int32) * TABLE_SIDE + ab[..., 0]) * TABLE_SIDE + ab[..., 1]
  return tf.gather(table, index)


def model_inputs(gray_u8: tf.Tensor, size: int, embedder_size: int):
  """gray (H, W) uint8 -> the networks' inputs as the pipeline makes them: L (1, size, size, 1)
  in LAB units, and the embedder's gray (1, E, E, 3) in [0, 1]; both letterboxed. The page is
  cast to float once for the two."""
  levels = tf.cast(gray_u8, tf.float32)
  l = gray_to_l(letterbox_u8(levels, size))
  unit = tf.cast(letterbox_u8(levels, embedder_size), tf.float32) / 255.0
  return l[None, :, :, None], tf.tile(unit[None, :, :, None], [1, 1, 1, 3])


def page_png(data: tf.Tensor, predict_ab, colour_box, *, size: int, embedder_size: int,
             max_pixels: int, png_compression: int) -> tf.Tensor:
  """One page's whole way through the SavedModel: image file bytes -> the coloured page's PNG.

  decode -> gray -> letterboxed inputs -> predict_ab(l, unit, page_hw) -> ab (size, size, 2) in
  LAB units -> colour_box(gray, the page's box of ab) -> uint8 RGB -> PNG. predict_ab runs the
  networks (a signature that feeds them more than the page passes its own); colour_box is the
  job's composition (`colour_page` for a gray job, `trainer.export.fill.manga_colour_page` for a
  manga job). The PNG is lossless at any zlib level (`png_compression`), so line art and
  lettering keep every pixel of their lightness.
  """
  gray = decode_gray(data, max_pixels)
  l, unit = model_inputs(gray, size, embedder_size)
  rgb = colour_box(gray, ab_box(gray, predict_ab(l, unit, tf.shape(gray))))
  return tf.io.encode_png(rgb, compression=png_compression)
