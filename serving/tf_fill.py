"""A manga page's colours, as TensorFlow ops: the model's flat colours stopped at the ink lines,
each user dot's region in the picked colour, and the page multiplied over them.

The flat layer is built on the fill grid (the page reduced by `koala.regions.fill_reduction`),
in sRGB, then upsampled to the page, which multiplies it (a colourist's Multiply layer: paper x
colour = colour, ink x colour = ink, screentone stays texture under the colour):

  1. The model's colour: its ab, bilinear to the fill grid, each ab's flat colour by
     `koala.colour.paper_colour` (the lightest colour of that chroma; a 256 x 256 table,
     `koala.colour.paper_colour_table`).
  2. The dots: each dotted region (`serving.tf_regions`) takes its dot's sRGB as the flat, so a
     paper pixel comes out as exactly the colour picked, lightness included (a navy coat is
     navy), and a white dot keeps its region white. Regions without a dot keep the model's.
  3. Colour that stops at the lines. Upsampling the model's small ab field blends the two
     sides of every line (7 page pixels at 224 from a 1600-px page, 14 at 112); so the flats
     within that blend distance of ink, and the pixels the barriers' gap closing took from a
     dotted region, are refilled from their own side: a fill that spreads one fill pixel a step,
     the mean of the known neighbours, never through ink (a geodesic dilation). Ink pixels then
     take their neighbours' flats in two more steps, so the anti-aliased edge of a line
     multiplies the colour of the region beside it.
  4. The flats are upsampled bilinearly to the page and multiplied by it: within a fill pixel
     or two of a line, under the line's own anti-aliasing, the two sides blend.

The page-sized work is one bilinear resize and one multiply; everything else is on the fill
grid, and the components are only computed when the page has a dot.
"""
from __future__ import annotations

import tensorflow as tf

from koala import regions as ref
from serving import tf_regions

AB_SIDE = 256             # koala.colour.paper_colour_table's index: (a + 128) * 256 + b + 128


def _window_any(mask: tf.Tensor, radius: tf.Tensor) -> tf.Tensor:
  """(h, w) 0/1 float -> 1 where the (2r+1)^2 window holds a 1: two cumulative-sum box sums
  (constant cost in r)."""
  k = 2 * radius + 1
  x = tf.cumsum(tf.pad(mask, [[radius + 1, radius], [0, 0]]), axis=0)
  x = tf.cumsum(tf.pad(x[k:] - x[:-k], [[0, 0], [radius + 1, radius]]), axis=1)
  return tf.cast(x[:, k:] - x[:, :-k] > 0.5, tf.float32)


def _sum3(x: tf.Tensor) -> tf.Tensor:
  """(h, w, C) -> the 3 x 3 neighbourhood sums (zero outside), by shifted adds."""
  p = tf.pad(x, [[1, 1], [1, 1], [0, 0]])
  rows = p[:-2] + p[1:-1] + p[2:]
  return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


def spread(flat: tf.Tensor, known: tf.Tensor, fillable: tf.Tensor, steps) -> tf.Tensor:
  """Each unknown fillable pixel next to known ones takes their mean, `steps` times: flat (h, w,
  C), known and fillable (h, w) 0/1 float -> flat with those pixels refilled."""
  state = tf.concat([flat * known[..., None], known[..., None]], axis=-1)

  def step(i, state):
    sums = _sum3(state)
    new = tf.cast(sums[..., -1:] > 0, tf.float32) * (1.0 - state[..., -1:]) * fillable[..., None]
    return i + 1, state + new * (sums / tf.maximum(sums[..., -1:], 1e-6) - state)

  _, state = tf.while_loop(lambda i, _: i < steps, step, (tf.constant(0), state))
  return tf.where(state[..., -1:] > 0, state[..., :-1], flat)


def dot_colours(page: dict) -> tf.Tensor:
  """int64 packed sRGB per fill pixel of the dotted regions, -1 elsewhere (no components are
  computed for a page without a dot)."""
  seed = page["seed"]
  return tf.cond(tf.reduce_any(seed >= 0),
                 lambda: tf_regions.region_colours(
                     tf_regions.components(page["levels"], page["barrier"]), seed),
                 lambda: tf.fill(tf.shape(seed), tf.constant(-1, tf.int64)))


def manga_colour_page(gray_u8: tf.Tensor, ab_box: tf.Tensor, table: tf.Tensor,
                      hints_rgba: tf.Tensor | None = None, closing: int = ref.DEFAULT_CLOSING,
                      reduction: int | None = None) -> tf.Tensor:
  """gray (H, W) uint8 + the model's ab over the page's box (h, w, 2), LAB units, + an optional
  hint image (any size, RGBA; alpha > 0 is a dot) -> uint8 sRGB (H, W, 3). `table` is
  `koala.colour.paper_colour_table()`; `closing` the barriers' growth in fill pixels (gap closing)."""
  shape = tf.shape(gray_u8)
  page = tf_regions.page_regions(gray_u8, closing, reduction, hints_rgba)
  r, grid = page["r"], tf.shape(page["levels"])
  ab = tf.image.resize(ab_box, grid, method="bilinear")
  index = tf.clip_by_value(tf.cast(tf.floor(ab + 128.5), tf.int32), 0, AB_SIDE - 1)
  flat = tf.gather(table, index[..., 0] * AB_SIDE + index[..., 1])
  ink = tf.cast(page["ink"], tf.float32)
  # The blend distance, in fill pixels: bilinear weights reach one model pixel across a line
  # (the model pixel on the line is itself a mix), and one more for the fill grid's step.
  factor = tf.maximum(tf.cast(grid[0], tf.float32) / tf.cast(tf.shape(ab_box)[0], tf.float32),
                      tf.cast(grid[1], tf.float32) / tf.cast(tf.shape(ab_box)[1], tf.float32))
  blend = tf.cast(tf.math.ceil(factor), tf.int32) + 1
  known = 1.0 - _window_any(ink, blend)
  if hints_rgba is not None:
    dots = dot_colours(page)
    dotted = dots >= 0
    rgb = tf.cast(tf.stack([dots // 65536, dots // 256 % 256, dots % 256], -1), tf.float32)
    flat = tf.where(dotted[..., None], rgb / 255.0, flat)
    known = tf.maximum(known, tf.cast(dotted, tf.float32))
  flat = spread(flat, known, 1.0 - ink, tf.maximum(blend + 1, closing + 1))
  flat = spread(flat, 1.0 - ink, ink, 2)
  # Upsampled with the ink pixels' weight 0 (a normalised bilinear resize): a page pixel
  # beside a line takes the flats of its own side only; one in the middle of a thick line
  # (all four neighbours ink) the ink's own.
  paper = 1.0 - ink[..., None]
  full = tf.image.resize(tf.concat([flat * paper, paper, flat], -1), r * grid,
                         method="bilinear")[:shape[0], :shape[1]]
  full = tf.where(full[..., 3:4] > 1e-3, full[..., :3] / tf.maximum(full[..., 3:4], 1e-3),
                  full[..., 4:])
  levels = tf.cast(gray_u8, tf.float32)[..., None]
  return tf.cast(full * levels + 0.5, tf.uint8)
