"""The user's guidance for one served page, as TensorFlow ops: a hint image -> the guided model's
hint planes, and a reference image -> its palette.

Why here and in TF ops: TF Serving runs the SavedModel with no Python, so the `colorize_guided`
signature (trainer/export/module.py) must turn the two uploaded images into model inputs in the
graph, beside the page path of `trainer.export.page`. The encodings are `koala.guidance`'s, the
single source of truth the trainer uses; tests/test_guidance_serving.py holds these ops equal to
it.

Hints (`hints_bytes`): an RGBA image; every pixel with alpha > 0 is a hint of its RGB colour.
It may have any size: it is stretched over the page, so every hint lands on the page, then
follows the page's own geometry (`page.letterbox_box`) into the model's S x S square. Per
square cell: mask = 1 when any hinted pixel falls in it, ab = the mean LAB ab of those pixels
(their L is ignored: the page's own lightness stays). The letterbox padding never gets a hint.
An empty string, or an image with no opaque pixel, gives all-zero planes: exactly the input the
model sees with no hints, so the output is the same bytes.

Speed: only the hinted pixels are converted to LAB (a few dots on an A4 page are a few hundred
pixels) and summed into their cells with one segment sum; the full-size work is the PNG decode
and one comparison on alpha.

Reference (`reference_bytes`): any image; alpha is composited on white, it is letterboxed to
schema.IMAGE_SIZE and converted to LAB exactly as the pipeline makes a record of it
(`koala.gray.lab_at`), and its palette is `koala.guidance.palette_tf` of that. An empty
string gives `NO_PALETTE`.

Both are decoded like the page (`image.decode`: format, truncation, the pixel cap on every
frame that will be decoded, EXIF orientation), and the error names the input ("hints_bytes: Not
a supported image ..."), so REST answers 400 with a message that says which upload was wrong.
A hint image is turned upright as the page is: drawn over the page as a viewer shows it (the
Streamlit page shows it upright too), it stays aligned with it.
"""
from __future__ import annotations

import tensorflow as tf

from koala import colour_tf, guidance, schema
from trainer.export import image, page
from trainer.export.signatures import HINTS_BYTES, REFERENCE_BYTES

HINT_CHANNELS = guidance.HINT_CHANNELS      # a / 128 * mask, b / 128 * mask, mask


def decode_rgba(data: tf.Tensor, max_pixels: int, name: str) -> tf.Tensor:
  """Image file bytes -> uint8 (H, W, 4); gray and RGB get alpha 255. InvalidArgument that
  names the input for bad, truncated or huge files; upright, as the page is."""
  # channels as stored (libjpeg refuses to decode to 4), so each layout is expanded here
  img = image.decode(data, max_pixels, name)
  opaque = tf.fill(tf.shape(img)[:2], tf.constant(255, tf.uint8))[..., None]
  gray3 = lambda: tf.tile(img[..., :1], [1, 1, 3])
  branches = [
      lambda: tf.concat([gray3(), opaque], -1),                   # gray
      lambda: tf.concat([gray3(), img[..., 1:2]], -1),            # gray + alpha
      lambda: tf.concat([img[..., :3], opaque], -1),              # RGB
      lambda: img[..., :4],                                       # RGBA
  ]
  rgba = tf.switch_case(tf.clip_by_value(tf.shape(img)[-1] - 1, 0, 3), branches)
  rgba.set_shape([None, None, 4])
  return rgba


def _cells(coords: tf.Tensor, source: tf.Tensor, offset: tf.Tensor, span: tf.Tensor) -> tf.Tensor:
  """Pixel indices along one axis of the hint image (size `source`) -> the square's cell index:
  pixel centres stretched over the page's box of `span` cells starting at `offset`."""
  scaled = (tf.cast(coords, tf.float64) + 0.5) * tf.cast(span, tf.float64) / tf.cast(
      source, tf.float64)
  return offset + tf.minimum(tf.cast(tf.floor(scaled), tf.int32), span - 1)


def hint_image(data: tf.Tensor, max_pixels: int) -> tf.Tensor:
  """hints_bytes -> uint8 RGBA (H, W, 4); an empty string gives an empty (0, 0, 4) image, which
  holds no hint."""
  return tf.cond(tf.strings.length(data) > 0,
                 lambda: decode_rgba(data, max_pixels, HINTS_BYTES),
                 lambda: tf.zeros([0, 0, 4], tf.uint8))


def hint_planes(rgba: tf.Tensor, page_hw: tf.Tensor, size: int) -> tf.Tensor:
  """A decoded hint image for a page of page_hw = (H, W) -> float32 (size, size, 3) hint planes."""
  hinted = tf.where(rgba[..., 3] > 0)                                   # (n, 2) int64
  ab = colour_tf.rgb_to_lab(tf.gather_nd(rgba[..., :3], hinted))[:, 1:]
  shape = tf.shape(rgba)
  top, left, bh, bw = page.letterbox_box(page_hw[0], page_hw[1], size)
  rows = _cells(hinted[:, 0], shape[0], top, bh)
  cols = _cells(hinted[:, 1], shape[1], left, bw)
  cell = rows * size + cols
  sums = tf.math.unsorted_segment_sum(ab, cell, size * size)
  counts = tf.math.unsorted_segment_sum(tf.ones_like(ab[:, :1]), cell, size * size)
  mask = tf.cast(counts > 0, tf.float32)
  mean = sums / tf.maximum(counts, 1.0)
  planes = tf.concat([mean / guidance.AB_SCALE * mask, mask], axis=-1)
  return tf.reshape(planes, [size, size, HINT_CHANNELS])


def letterbox_rgb_u8(rgb: tf.Tensor, size: int) -> tf.Tensor:
  """uint8 (H, W, 3) -> uint8 (size, size, 3): `koala.images.letterbox` on colour, as
  `page.letterbox_u8` is on gray."""
  shape = tf.shape(rgb)
  top, left, bh, bw = page.letterbox_box(shape[0], shape[1], size)
  scaled = tf.clip_by_value(tf.round(page.resize(tf.cast(rgb, tf.float32), bh, bw)), 0.0, 255.0)
  padded = tf.pad(scaled, [[top, size - bh - top], [left, size - bw - left], [0, 0]],
                  constant_values=255.0)
  padded.set_shape([size, size, 3])
  return tf.cast(padded, tf.uint8)


def reference_palette(data: tf.Tensor, max_pixels: int) -> tf.Tensor:
  """A reference image -> float32 (PALETTE_SIZE,): its palette as the trainer computes it."""
  rgba = decode_rgba(data, max_pixels, REFERENCE_BYTES)
  rgb = page.composite_on_white(rgba[..., :3], rgba[..., 3:])
  lab = colour_tf.rgb_to_lab(letterbox_rgb_u8(rgb, schema.IMAGE_SIZE))
  palette = tf.cast(guidance.palette_tf(lab[..., 0], lab[..., 1:]), tf.float32)
  return tf.reshape(palette, [guidance.PALETTE_SIZE])


def palette(reference: tf.Tensor, max_pixels: int) -> tf.Tensor:
  """reference_bytes -> float32 (PALETTE_SIZE,); an empty string gives `NO_PALETTE`."""
  return tf.cond(tf.strings.length(reference) > 0,
                 lambda: reference_palette(reference, max_pixels),
                 lambda: tf.constant(guidance.NO_PALETTE, tf.float32))
