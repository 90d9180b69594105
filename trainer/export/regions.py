"""The regions of a manga page and the colours a user's dots give them, as TensorFlow ops.

`koala.regions` defines the regions (descreen, tone levels, barriers with gap closing,
4-connected components on the fill grid) and the dots' colours (seeds, one colour a region, a
bounded split where a region holds several) in NumPy; this is the same, step for step, in ops
that TF Serving has (no py_function), and tests/test_regions.py holds the two equal. Integer
arithmetic throughout, so the two agree exactly rather than nearly.

Connected components in graph ops: the fillable pixels of each row form runs (a run starts
where the row starts, after a barrier, or where the tone level changes); two runs in adjacent
rows that touch with one level are joined. The runs are joined by hook-and-compress: every
edge hooks the larger of its two roots under the smaller (one unsorted_segment_min), then
pointer jumping compresses the trees; a few rounds join every component (a run graph, not a
pixel graph, so far fewer nodes and rounds than pixel label propagation).
"""
from __future__ import annotations

import tensorflow as tf

from koala import regions as ref

_INT64_MAX = 2 ** 63 - 1


def fill_reduction(height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
  """`koala.regions.fill_reduction` in TF (int32)."""
  area = tf.cast(height, tf.float64) * tf.cast(width, tf.float64)
  return tf.maximum(2, tf.cast(tf.math.ceil(tf.sqrt(area / ref.FILL_PIXELS)), tf.int32))


def block_sum_and_min(gray_u8: tf.Tensor, r: tf.Tensor):
  """uint8 (H, W) -> (block sums int32 (h, w), darkest level int32 (h, w)), paper-padded."""
  shape = tf.shape(gray_u8)
  hh, ww = (shape[0] + r - 1) // r, (shape[1] + r - 1) // r
  levels = tf.pad(tf.cast(gray_u8, tf.int32), [[0, r * hh - shape[0]], [0, r * ww - shape[1]]],
                  constant_values=255)
  blocks = tf.reshape(levels, [hh, r, ww, r])
  return tf.reduce_sum(blocks, axis=[1, 3]), tf.reduce_min(blocks, axis=[1, 3])


def _binomial_blur(x: tf.Tensor, n: int) -> tf.Tensor:
  k = [int(v) for v in ref.binomial_kernel(n)]
  half = n // 2
  h, w = tf.shape(x)[0], tf.shape(x)[1]
  p = tf.pad(x, [[half, half], [0, 0]], mode="SYMMETRIC")
  x = tf.add_n([k[i] * p[i:i + h] for i in range(n + 1)])
  p = tf.pad(x, [[0, 0], [half, half]], mode="SYMMETRIC")
  return tf.add_n([k[i] * p[:, i:i + w] for i in range(n + 1)])


def tone_levels(sums: tf.Tensor, r: tf.Tensor) -> tf.Tensor:
  """Block sums -> int32 tone level (0 ink .. 3 paper), descreened by `ref.binomial_order(r)`."""
  def at(n):
    def level():
      d = _binomial_blur(sums, n)
      weight = r * r * 4 ** n
      return tf.add_n([tf.cast(d >= e * weight, tf.int32) for e in ref.TONE_EDGES])
    return level
  return tf.cond(r <= 2, at(ref.binomial_order(2)), at(ref.binomial_order(3)))


def grow(mask: tf.Tensor, radius: int) -> tf.Tensor:
  """Binary dilation of a bool (h, w) mask by a (2 radius + 1)^2 square (max pooling)."""
  if radius <= 0:
    return mask
  x = tf.cast(mask, tf.float32)[None, :, :, None]
  return tf.nn.max_pool2d(x, 2 * radius + 1, 1, "SAME")[0, :, :, 0] > 0.5


def barriers(levels: tf.Tensor, darkest: tf.Tensor, closing: int = ref.DEFAULT_CLOSING,
             drawn: tf.Tensor | None = None):
  """-> (ink, barrier) bool (h, w): `koala.regions.barriers`."""
  near_paper = grow(tf.equal(levels, len(ref.TONE_EDGES)), ref.NEAR_PAPER)
  ink = tf.logical_or(tf.equal(levels, 0), tf.logical_and(near_paper, darkest < ref.SHARP_INK))
  if drawn is not None:
    ink = tf.logical_or(ink, drawn)
  return ink, grow(ink, closing)


def _jump(parent: tf.Tensor) -> tf.Tensor:
  """Pointer jumping until every node points at its root."""
  def body(p, _):
    q = tf.gather(p, p)
    return q, tf.reduce_any(tf.not_equal(q, p))
  parent, _ = tf.while_loop(lambda p, more: more, body, (parent, tf.constant(True)))
  return parent


def components(levels: tf.Tensor, barrier: tf.Tensor) -> tf.Tensor:
  """-> int32 label per fill pixel, -1 on barriers: the pixel's component, named by the index
  of its first run (labels are not consecutive)."""
  h, w = tf.shape(levels)[0], tf.shape(levels)[1]
  fillable = tf.logical_not(barrier)
  first_col = tf.tile(tf.range(w)[None] < 1, [h, 1])
  left_level = tf.pad(levels[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
  left_fill = tf.pad(fillable[:, :-1], [[0, 0], [1, 0]])
  start = fillable & (first_col | ~left_fill | tf.not_equal(left_level, levels))
  run = tf.cumsum(tf.reshape(tf.cast(start, tf.int32), [-1])) - 1          # (h * w,)
  runs = tf.reduce_sum(tf.cast(start, tf.int32))
  run = tf.reshape(run, [h, w])
  # Vertical joins: a pixel and the one below it, both fillable with one level; a join is kept
  # only where its pair of runs differs from the pair at the pixel to its left.
  join = fillable[:-1] & fillable[1:] & tf.equal(levels[:-1], levels[1:])
  up, down = run[:-1], run[1:]
  same_left = tf.pad(join[:, :-1] & tf.equal(up[:, :-1], up[:, 1:]) &
                     tf.equal(down[:, :-1], down[:, 1:]), [[0, 0], [1, 0]])
  keep = join & ~same_left
  u, v = tf.boolean_mask(up, keep), tf.boolean_mask(down, keep)

  def body(parent, _):
    pu, pv = tf.gather(parent, u), tf.gather(parent, v)
    hooked = tf.math.unsorted_segment_min(tf.minimum(pu, pv), tf.maximum(pu, pv), runs)
    new = _jump(tf.minimum(parent, hooked))
    return new, tf.reduce_any(tf.not_equal(new, parent))

  parent, _ = tf.while_loop(lambda p, more: more, body, (tf.range(runs), tf.constant(True)))
  return tf.where(fillable, tf.gather(parent, tf.maximum(run, 0)), -1)


def seeds(hints_rgba: tf.Tensor, page_hw: tf.Tensor, grid_hw: tf.Tensor, r: tf.Tensor):
  """A hint image (any size, stretched over the page) -> (int64 packed sRGB seed per fill pixel
  or -1, bool lines drawn in it): `koala.regions.seeds`."""
  alpha = tf.cast(hints_rgba[..., 3], tf.int64)
  at = tf.where(alpha > 0)                                               # (n, 2) int64
  shape = tf.cast(tf.shape(alpha), tf.float64)
  page = tf.cast(page_hw, tf.int64)

  def fill_index(coord, axis):
    p = tf.cast((tf.cast(coord, tf.float64) + 0.5) * tf.cast(page[axis], tf.float64)
                / shape[axis], tf.int64)
    return tf.minimum(p, page[axis] - 1) // tf.cast(r, tf.int64)

  hh, ww = tf.cast(grid_hw[0], tf.int64), tf.cast(grid_hw[1], tf.int64)
  index = fill_index(at[:, 0], 0) * ww + fill_index(at[:, 1], 1)
  rgb = tf.cast(tf.gather_nd(hints_rgba[..., :3], at), tf.int64)
  packed = rgb[:, 0] * 2 ** 16 + rgb[:, 1] * 2 ** 8 + rgb[:, 2]
  line = tf.equal(packed, ref.LINE_PACKED)
  # A line's pixels count 1 in their fill pixel, a colour's its alpha and colour, packed.
  drawn = tf.math.unsorted_segment_max(tf.cast(line, tf.int32), index, hh * ww) > 0
  key = tf.where(line, tf.constant(-1, tf.int64), tf.gather_nd(alpha, at) * 2 ** 24 + packed)
  best = tf.math.unsorted_segment_max(key, index, hh * ww)
  grid = tf.stack([hh, ww])
  return (tf.reshape(tf.where(best >= 0, best % 2 ** 24, -1), grid), tf.reshape(drawn, grid))


def _neighbour(x: tf.Tensor, dy: int, dx: int, fill) -> tf.Tensor:
  """The value of each pixel's neighbour at (dy, dx) (each -1, 0 or 1), `fill` outside."""
  p = tf.pad(x, [[1, 1], [1, 1]], constant_values=fill)
  h, w = tf.shape(x)[0], tf.shape(x)[1]
  return p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


def split_waves(labels: tf.Tensor, reached: tf.Tensor, split: tf.Tensor,
                steps: int = ref.SPLIT_STEPS) -> tf.Tensor:
  """`koala.regions.split_waves`: breadth-first waves of int32 colours through each region."""
  same = {d: tf.equal(_neighbour(labels, *d, -2), labels) for d in ref.NEIGHBOURS_8}

  def wave(reached, ds):
    best = reached
    for d in ds:
      best = tf.maximum(best, tf.where(same[d], _neighbour(reached, *d, -1), -1))
    return tf.where(split & (reached < 0), best, reached)

  def body(i, reached, _):
    grown = tf.cond(i % 2 == 0, lambda: wave(reached, ref.NEIGHBOURS_4),
                    lambda: wave(reached, ref.NEIGHBOURS_8))
    return i + 1, grown, tf.reduce_any(tf.not_equal(grown, reached))

  _, reached, _ = tf.while_loop(lambda i, _, more: more & (i < steps), body,
                                (tf.constant(0), reached, tf.constant(True)))
  return reached


def region_colours(labels: tf.Tensor, seed: tf.Tensor, steps: int = ref.SPLIT_STEPS):
  """-> int64 packed colour per fill pixel, or -1: `koala.regions.region_colours`."""
  inside = labels >= 0
  seed = tf.where(inside, seed, -1)
  segments = tf.maximum(tf.reduce_max(labels) + 1, 1)
  lab = tf.maximum(labels, 0)
  seeded = seed >= 0
  hi = tf.maximum(tf.math.unsorted_segment_max(tf.boolean_mask(seed, seeded),
                                               tf.boolean_mask(lab, seeded), segments), -1)
  lo = tf.math.unsorted_segment_min(tf.boolean_mask(seed, seeded), tf.boolean_mask(lab, seeded),
                                    segments)
  several = (hi >= 0) & tf.not_equal(lo, hi)
  out = tf.where(inside, tf.gather(hi, lab), -1)
  split = inside & tf.gather(several, lab)

  def waves():
    # Only the box around the regions to split takes part (a bubble's split costs a bubble).
    rows = tf.where(tf.reduce_any(split, axis=1))[:, 0]
    cols = tf.where(tf.reduce_any(split, axis=0))[:, 0]
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box = lambda x: x[top:bottom, left:right]
    reached = split_waves(box(labels), tf.cast(tf.where(box(split), box(seed), -1), tf.int32),
                          box(split), steps)
    reached = tf.pad(tf.cast(reached, tf.int64),
                     [[top, tf.cast(tf.shape(split)[0], tf.int64) - bottom],
                      [left, tf.cast(tf.shape(split)[1], tf.int64) - right]],
                     constant_values=-1)
    return tf.where(split, reached, out)

  return tf.cond(tf.reduce_any(split), waves, lambda: out)


def page_regions(gray_u8: tf.Tensor, closing: int = ref.DEFAULT_CLOSING, r=None,
                 hints_rgba: tf.Tensor | None = None) -> dict:
  """The page's fill grid: its reduction r, tone levels, ink, barriers and the seeds of a hint
  image (`koala.regions.page_regions`; `components` of levels and barrier labels the
  regions, which only a page with a dot needs)."""
  shape = tf.shape(gray_u8)
  r = fill_reduction(shape[0], shape[1]) if r is None else tf.constant(r, tf.int32)
  sums, darkest = block_sum_and_min(gray_u8, r)
  levels = tone_levels(sums, r)
  if hints_rgba is None:
    seed, drawn = tf.fill(tf.shape(levels), tf.constant(-1, tf.int64)), None
  else:
    seed, drawn = seeds(hints_rgba, shape[:2], tf.shape(levels), r)
  ink, barrier = barriers(levels, darkest, closing, drawn)
  return {"r": r, "levels": levels, "ink": ink, "barrier": barrier,
          "seed": tf.where(barrier, tf.constant(-1, tf.int64), seed)}
