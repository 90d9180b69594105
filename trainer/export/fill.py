"""A manga page's colours, as TensorFlow ops: the model's flat colours stopped at the ink lines,
each user dot's region in the picked colour, and the page multiplied over them.

The flat layer is built on the fill grid (the page reduced by `koala.regions.fill_reduction`),
in sRGB, then upsampled to the page, which multiplies it (a colourist's Multiply layer: paper x
colour = colour, ink x colour = ink, screentone stays texture under the colour):

  1. The model's colour: its ab, bilinear to the fill grid, each ab's flat colour by
     `koala.colour.paper_colour` (the lightest colour of that chroma; a 256 x 256 table,
     `koala.colour.paper_colour_table`).
  2. The model's colour laid flat per region (`flatten`, Style2Paints' flattening): each
     region takes the mean of the model's ab away from its lines. On held-out art it made the
     automatic colour nearer the truth than the bare page, where the raw model was farther
     (docs/benchmarks.md, "Manga pages").
  3. The dots: each dotted region (`trainer.export.regions`) takes its dot's sRGB as the flat, so a
     paper pixel comes out as exactly the colour picked, lightness included (a navy coat is
     navy), and a white dot keeps its region white. Regions without a dot keep the model's.
  4. Colour that stops at the lines. Upsampling the model's small ab field blends the two
     sides of every line (7 page pixels at 224 from a 1600-px page, 14 at 112); so the model's
     colour within that blend distance of ink is refilled from its own side, by a fill that
     spreads one grid pixel a step and never through ink (`grow`, a geodesic dilation). A
     dotted region's colour is grown the same way into its pixels near the lines and into the
     strip the gap closing took from it. Then each ink grid pixel takes the colour of a side
     (INK_STEPS steps into the ink), so the anti-aliased edge of a line multiplies a region's
     colour rather than the model's blend.
  5. The flats are upsampled bilinearly to the page and multiplied by it: within a grid pixel
     of a line, under the line's own anti-aliasing, the two sides meet.

The page-sized work is one bilinear resize and one multiply; everything else is on the fill
grid, and the components are only computed when the page has a dot.
"""
from __future__ import annotations

import tensorflow as tf

from koala import regions as ref
from trainer.export import regions

AB_SIDE = 256             # koala.colour.paper_colour_table's index: (a + 128) * 256 + b + 128
INK_STEPS = ref.INK_STEPS
FLAT_DTYPE = tf.float64      # region sums: as exact as NumPy's


def _window_any(mask: tf.Tensor, radius: tf.Tensor) -> tf.Tensor:
  """(h, w) 0/1 float -> 1 where the (2r+1)^2 window holds a 1: two cumulative-sum box sums
  (constant cost in r)."""
  k = 2 * radius + 1
  x = tf.cumsum(tf.pad(mask, [[radius + 1, radius], [0, 0]]), axis=0)
  x = tf.cumsum(tf.pad(x[k:] - x[:-k], [[0, 0], [radius + 1, radius]]), axis=1)
  return tf.cast(x[:, k:] - x[:, :-k] > 0.5, tf.float32)


def grow(values: tf.Tensor, free: tf.Tensor, steps) -> tf.Tensor:
  """Non-negative int64 values (table indices, packed colours; -1 = none) grown up to `steps`
  grid pixels into the `free` pixels that have none, each taking the largest of its
  4-neighbours' (never a blend of two colours; a diagonal step could cross a 1-pixel diagonal
  line). Float32 holds every value exactly (< 2**24)."""
  x = tf.cast(values, tf.float32)

  def step(i, x):
    p = tf.pad(x, [[1, 1], [1, 1]], constant_values=-1.0)
    grown = tf.maximum(tf.maximum(p[:-2, 1:-1], p[2:, 1:-1]), tf.maximum(p[1:-1, :-2], p[1:-1, 2:]))
    return i + 1, tf.where(tf.logical_and(free, x < 0), grown, x)

  _, x = tf.while_loop(lambda i, _: i < steps, step, (tf.constant(0), x))
  return tf.cast(x, tf.int64)


def flatten(ab: tf.Tensor, labels: tf.Tensor, known: tf.Tensor) -> tf.Tensor:
  """`koala.regions.flatten`: each region of at least FLATTEN_MIN_PIXELS takes the mean ab of
  its pixels away from the lines (all of them where none is). Sums in float64, as NumPy's."""
  inside = labels >= 0
  lab = tf.maximum(labels, 0)
  n = tf.maximum(tf.reduce_max(labels) + 1, 1)
  use = tf.cast(tf.logical_and(inside, known), FLAT_DTYPE)[..., None]
  every = tf.cast(inside, FLAT_DTYPE)[..., None]
  ab64 = tf.cast(ab, FLAT_DTYPE)
  # one segment sum of (ab, 1) over the known pixels and over all of them
  sums = tf.math.unsorted_segment_sum(
      tf.concat([ab64 * use, use, ab64 * every, every], -1), lab, n)
  mean = tf.where(sums[:, 2:3] > 0, sums[:, :2] / tf.maximum(sums[:, 2:3], 1.0),
                  sums[:, 3:5] / tf.maximum(sums[:, 5:6], 1.0))
  table = tf.concat([tf.cast(mean, tf.float32),
                     tf.cast(sums[:, 5:6] >= ref.FLATTEN_MIN_PIXELS, tf.float32)], -1)
  region = tf.gather(table, lab)
  return tf.where(tf.logical_and(inside, region[..., 2] > 0.5)[..., None], region[..., :2], ab)


def dot_colours(page: dict, labels) -> tf.Tensor:
  """int64 packed sRGB per fill pixel of the dotted regions, -1 elsewhere. `labels` is a
  function giving the components (computed only for a page with a dot, unless flattening has
  them already)."""
  seed = page["seed"]
  return tf.cond(tf.reduce_any(seed >= 0),
                 lambda: regions.region_colours(labels(), seed),
                 lambda: tf.fill(tf.shape(seed), tf.constant(-1, tf.int64)))


def manga_colour_page(gray_u8: tf.Tensor, ab_box: tf.Tensor, table: tf.Tensor,
                      hints_rgba: tf.Tensor | None = None, closing: int = ref.DEFAULT_CLOSING,
                      reduction: int | None = None,
                      flat_regions: bool = ref.DEFAULT_FLAT_REGIONS) -> tf.Tensor:
  """gray (H, W) uint8 + the model's ab over the page's box (h, w, 2), LAB units, + an optional
  hint image (any size, RGBA; alpha > 0 is a dot) -> uint8 sRGB (H, W, 3). `table` is
  `koala.colour.paper_colour_table()`; `closing` the barriers' growth in fill pixels (gap
  closing); `flat_regions` lays the model's colour flat per region (`flatten`)."""
  shape = tf.shape(gray_u8)
  page = regions.page_regions(gray_u8, closing, reduction, hints_rgba)
  r, grid, ink = page["r"], tf.shape(page["levels"]), page["ink"]
  blend = ref.blend_distance_tf(grid, tf.shape(ab_box))
  near_ink = _window_any(tf.cast(ink, tf.float32), blend) > 0.5
  beside = tf.logical_and(near_ink, tf.logical_not(ink))
  ab = tf.image.resize(ab_box, grid, method="bilinear")
  labels = lambda: regions.components(page["levels"], page["barrier"])
  if flat_regions:
    components = labels()
    labels = lambda: components
    ab = flatten(ab, components, tf.logical_not(near_ink))
  index = tf.clip_by_value(tf.cast(tf.floor(ab + 128.5), tf.int64), 0, AB_SIDE - 1)
  index = index[..., 0] * AB_SIDE + index[..., 1]
  # The model's colour near the lines comes from its own side; then the ink takes a side's.
  grown = grow(tf.where(near_ink, tf.constant(-1, tf.int64), index), beside, blend + 1)
  grown = grow(grown, ink, INK_STEPS)
  flat = tf.gather(table, tf.where(grown >= 0, grown, index))
  if hints_rgba is not None:
    # A dotted region's colour reaches its lines the same way, and the strip the gap closing
    # took from it (within `closing` of ink).
    dots = grow(dot_colours(page, labels), beside, tf.maximum(blend + 1, closing + 1))
    dots = grow(dots, ink, INK_STEPS)
    rgb = tf.cast(tf.stack([dots // 65536, dots // 256 % 256, dots % 256], -1), tf.float32)
    flat = tf.where((dots >= 0)[..., None], rgb / 255.0, flat)
  full = tf.image.resize(flat, r * grid, method="bilinear")[:shape[0], :shape[1]]
  return tf.cast(full * tf.cast(gray_u8, tf.float32)[..., None] + 0.5, tf.uint8)
