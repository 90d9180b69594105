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
    so a 60000 x 60000 "bomb" is refused without allocating it (`serving.tf_image`).
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

A job trained on manga renderings composes its pages by `koala.colour.manga_page_rgb` instead
(the page multiplies the flat colour, so the colour reaches white paper and ink stays ink): the
same table, filled by the other rule, so the colour conversion costs what a gray job's does; its
ab is upsampled by `line_aware_upsample`, which costs more (docs/benchmarks.md).
"""
from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from koala import colour, colour_tf
from serving import tf_image

AB_OFFSET = 128          # table index of ab = round(ab) + AB_OFFSET
TABLE_SIDE = 256


def composite_on_white(color: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
  """uint8 colour (H, W, C) over white paper with uint8 alpha (H, W, 1) -> uint8 (H, W, C)."""
  a = tf.cast(alpha, tf.float32) / 255.0
  out = tf.cast(color, tf.float32) * a + 255.0 * (1.0 - a)
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
  files (`serving.tf_image.decode`)."""
  img = tf_image.decode(data, max_pixels)
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


@functools.lru_cache(maxsize=2)
def lab_rgb_table(composition: str = colour.COMPOSE_KEEP_L,
                  levels_per_chunk: int = 16) -> np.ndarray:
  """(256**3, 3) uint8: `koala.colour.compose_page` of every gray level and whole a, b in
  [-128, 127], by the job's composition: `page_rgb` (ab clamped, brought into the gamut at
  constant L and hue, so the output keeps the page's L exactly) or `manga_page_rgb`. The graph
  only gathers from it, so the served pixels and the NumPy reference path have one definition,
  the one in `koala.colour`."""
  ab = np.arange(TABLE_SIDE, dtype=np.float32) - AB_OFFSET
  a, b = np.meshgrid(ab, ab, indexing="ij")
  ab = np.stack([a.ravel(), b.ravel()], axis=-1)
  if composition == colour.COMPOSE_MANGA:
    # manga_page_rgb is the page times the flat colour of ab: the colours once, then each level.
    flat = colour.paper_colour(ab)
    levels = np.arange(TABLE_SIDE, dtype=np.float32)[:, None, None] / np.float32(255.0)
    table = colour.to_uint8(flat[None] * levels).reshape(-1, 3)
  elif composition == colour.COMPOSE_KEEP_L:
    ab = np.tile(ab, (levels_per_chunk, 1))
    chunks = []
    for start in range(0, TABLE_SIDE, levels_per_chunk):   # a few levels at a time: small temporaries
      gray = np.repeat(np.arange(start, start + levels_per_chunk, dtype=np.uint8), TABLE_SIDE ** 2)
      chunks.append(colour.page_rgb(gray, ab))
    table = np.concatenate(chunks)
  else:
    raise ValueError(f"unknown composition {composition!r}; choose one of {colour.COMPOSITIONS}")
  table.flags.writeable = False
  return table


def colour_page(gray_u8: tf.Tensor, ab_square: tf.Tensor, table: tf.Tensor,
                line_aware: bool = False) -> tf.Tensor:
  """gray (H, W) uint8 + the model's letterboxed ab (S, S, 2) in LAB units -> uint8 RGB (H, W, 3).

  ab is cut out of the letterbox, upsampled to (H, W) (bilinear, or with `line_aware` by
  `line_aware_upsample`: manga jobs), clamped and rounded; the page's own gray gives L at full
  resolution.
  """
  shape = tf.shape(gray_u8)
  size = ab_square.shape[0]
  top, left, bh, bw = letterbox_box(shape[0], shape[1], size)
  # Clamped while small: bilinear interpolation stays inside the clamp, so the page-sized
  # tensor needs no clipping, and +0.5 then truncation rounds it (every page-sized op costs
  # tens of milliseconds on an A4 page).
  ab = colour_tf.clamp_ab(ab_square[top:top + bh, left:left + bw])
  if line_aware:
    ab = line_aware_upsample(gray_u8, ab)
  else:
    ab = tf.image.resize(ab, shape[:2], method="bilinear")
  ab = tf.cast(ab + (AB_OFFSET + 0.5), tf.int32)
  index = (tf.cast(gray_u8, tf.int32) * TABLE_SIDE + ab[..., 0]) * TABLE_SIDE + ab[..., 1]
  return tf.gather(table, index)


# Colour that stops at the lines. Upsampling the model's small ab field bilinearly blends the
# two sides of every ink line over one small pixel, 7 page pixels at 224 from a 1600-px page (14
# at Koala_cpu's 112): even a perfect fill bleeds across each line. Manga's regions are bounded
# by ink, so near a line a pixel takes the colour of its own side: every pixel within the blend
# distance of ink is refilled from the pixels beyond it, by a fill that spreads one pixel a step
# and never through ink (a geodesic dilation, what Krita's Colorize Mask does up to the lines).
# Screentone is ink too, so a screened area has no pixel beyond the blend distance and keeps the
# plain upsampling. It runs at half the page's resolution (each fill pixel is ink when any of
# its page pixels is, so 1-px lines stay barriers), then the result is upsampled bilinearly:
# what blends there is within a pixel or two of the line, under the line's own anti-aliasing. (A page larger
# than 4 x FILL_PIXELS is reduced by 3 or more, so that the fill costs what it costs on a
# 1600-px page: on an A4 page at 200 dpi, a third of the time for a leak of 9 % instead of 2 %.)
INK_BELOW = 128             # a gray level below this is ink, for the fill's barriers


def _window_any(mask: tf.Tensor, radius: tf.Tensor) -> tf.Tensor:
  """(H, W) 0/1 float -> 1 where the (2r+1)^2 window holds a 1: two cumulative-sum box sums
  (constant cost in r; TensorFlow's CPU pooling costs seconds at page size)."""
  k = 2 * radius + 1
  x = tf.cumsum(tf.pad(mask, [[radius + 1, radius], [0, 0]]), axis=0)
  x = tf.cumsum(tf.pad(x[k:] - x[:-k], [[0, 0], [radius + 1, radius]]), axis=1)
  return tf.cast(x[:, k:] - x[:, :-k] > 0.5, tf.float32)


def _sum3(x: tf.Tensor) -> tf.Tensor:
  """(H, W, C) -> the 3 x 3 neighbourhood sums (zero outside), by shifted adds."""
  p = tf.pad(x, [[1, 1], [1, 1], [0, 0]])
  rows = p[:-2] + p[1:-1] + p[2:]
  return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


FILL_PIXELS = 600_000       # the fill's grid: the page reduced by a whole factor >= 2 to at most
                            # about this many pixels (a 1600 x 1200 page by 2, an A4 at 200 dpi by
                            # 3), so its cost stays that of a fixed-size image


def fill_reduction(height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
  """The whole factor the fill reduces a page by: 2, or more for a page over 4 x FILL_PIXELS."""
  area = tf.cast(height, tf.float32) * tf.cast(width, tf.float32)
  return tf.maximum(2, tf.cast(tf.math.ceil(tf.sqrt(area / FILL_PIXELS)), tf.int32))


def line_aware_upsample(gray_u8: tf.Tensor, ab_box: tf.Tensor,
                        reduction: int | None = None) -> tf.Tensor:
  """The page's gray (H, W) and the model's ab over the page's box (h, w, 2) -> ab (H, W, 2)
  that stops at the ink lines (see above). reduction: the fill grid's factor (default
  `fill_reduction`)."""
  shape = tf.shape(gray_u8)
  r = fill_reduction(shape[0], shape[1]) if reduction is None else tf.constant(reduction)
  hh, ww = (shape[0] + r - 1) // r, (shape[1] + r - 1) // r
  half = tf.image.resize(ab_box, [hh, ww], method="bilinear")
  levels = tf.pad(tf.cast(gray_u8, tf.float32), [[0, r * hh - shape[0]], [0, r * ww - shape[1]]],
                  constant_values=255.0)
  # a fill pixel is ink when any of its r x r page pixels is, so 1-px lines stay barriers
  darkest = tf.reduce_min(tf.reshape(levels, [hh, r, ww, r]), axis=[1, 3])
  ink = tf.cast(darkest < INK_BELOW, tf.float32)
  # The blend distance, in fill pixels: bilinear weights reach one model pixel across a line
  # (the model pixel on the line is itself a mix), and one more for the fill grid's step.
  factor = tf.maximum(tf.cast(hh, tf.float32) / tf.cast(tf.shape(ab_box)[0], tf.float32),
                      tf.cast(ww, tf.float32) / tf.cast(tf.shape(ab_box)[1], tf.float32))
  blend = tf.cast(tf.math.ceil(factor), tf.int32) + 1
  known = 1.0 - _window_any(ink, blend)
  fillable = 1.0 - ink
  # The state is (a * known, b * known, known): one 3 x 3 sum a step gives the unknown pixels
  # next to known ones the mean of those, and marks them known.
  state = tf.concat([half * known[..., None], known[..., None]], axis=-1)

  def step(i, state):
    sums = _sum3(state)
    new = tf.cast(sums[..., 2:] > 0, tf.float32) * (1.0 - state[..., 2:]) * fillable[..., None]
    return i + 1, state + new * (sums / tf.maximum(sums[..., 2:], 1e-6) - state)

  _, state = tf.while_loop(lambda i, _: i < blend + 1, step, (tf.constant(0), state))
  half = tf.where(state[..., 2:] > 0, state[..., :2], half)
  full = tf.image.resize(half, [r * hh, r * ww], method="bilinear")
  return full[:shape[0], :shape[1]]


def model_inputs(gray_u8: tf.Tensor, size: int, embedder_size: int):
  """gray (H, W) uint8 -> the networks' inputs as the pipeline makes them: L (1, size, size, 1)
  in LAB units, and the embedder's gray (1, E, E, 3) in [0, 1]; both letterboxed. The page is
  cast to float once for the two."""
  levels = tf.cast(gray_u8, tf.float32)
  l = gray_to_l(letterbox_u8(levels, size))
  unit = tf.cast(letterbox_u8(levels, embedder_size), tf.float32) / 255.0
  return l[None, :, :, None], tf.tile(unit[None, :, :, None], [1, 1, 1, 3])


def page_png(data: tf.Tensor, predict_ab, table: tf.Tensor, *, size: int, embedder_size: int,
             max_pixels: int, png_compression: int, line_aware: bool = False) -> tf.Tensor:
  """One page's whole way through the SavedModel: image file bytes -> the coloured page's PNG.

  decode -> gray -> letterboxed inputs -> predict_ab(l, unit, page_hw) -> ab (size, size, 2) in
  LAB units -> ab on the page's own L (`colour_page`) -> PNG. predict_ab runs the networks; a signature
  that feeds them more than the page passes its own. The PNG is lossless at any zlib level
  (`png_compression`), so line art and lettering keep every pixel of their lightness.
  """
  gray = decode_gray(data, max_pixels)
  l, unit = model_inputs(gray, size, embedder_size)
  rgb = colour_page(gray, predict_ab(l, unit, tf.shape(gray)), table, line_aware=line_aware)
  return tf.io.encode_png(rgb, compression=png_compression)
