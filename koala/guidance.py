"""Guidance for the colorizer: colour hints (points) and a reference palette, in one place.

The guided colorizer (trainer.model.build_guided_colorizer) takes two inputs besides L and the
embedding; this module is the single source of truth for both, used by the trainer (hints
sampled from the record's true ab), the evaluation, the export and serving (hints from a user's
RGBA PNG, a palette from a reference image).

Hint planes, (S, S, 3) float32 = [a / 128 * mask, b / 128 * mask, mask], mask in {0, 1}:
  a hinted pixel carries its colour's ab (the model's ab / 128 scale) and mask 1; every other
  pixel is (0, 0, 0). All-zero planes mean "no hints" (automatic mode). S is the model's
  image_size; `resize_hints_tf` brings planes drawn at another size to it.

Palette, (PALETTE_SIZE,) float32 = [histogram over PALETTE_BINS ab cells, present flag]:
  the share of the image's coloured pixels in each cell of an 11 x 11 grid over a, b in
  [-121, 121] (cells 22 LAB units wide, the middle cell centred on gray; values beyond the
  grid fall into the edge cells), then 1.0 as the last element. `NO_PALETTE` (all zeros, flag 0)
  means "no reference". Pixels with L < 5 (ink) or L > 99 (paper) are left out: their ab is
  noise or gray, and in manga they are most of the page, which would drown the colours.

Why an ab grid and not Comicolorization's 6 x 6 x 6 RGB histogram: the model already has L,
so the palette only has to say which chroma the image holds. An RGB histogram spends most of
its 216 bins on lightness (the gray diagonal alone takes 6 bins and many bins differ only in L),
and two colours of one hue at different lightness land in different bins. bench/palette_choice.py
recolours every pixel with its bin centre's ab at its own L: the 121-bin ab grid keeps more of the
image than the 216-bin RGB histogram (its figures: docs/benchmarks.md, "Figures behind choices in
the code").

Hint sampling (`sample_hints_tf`), Zhang et al. 2017's scheme adapted to manga: each hint is a
small patch (P x P, P drawn from 1..9 in training) whose value is the mean true ab of the patch,
placed at random. Manga is flat colour regions bounded by ink lines, so:
  * locations favour flat places (the L range over the 5 x 5 neighbourhood small), not lines,
    where a user would click and where the colour is unambiguous (Zhang draws from a normal
    centred on the image; a page's regions are everywhere, so here the draw is over the page),
    and shun bare paper and ink (the flattest places of all, letterbox padding included, but
    not where a user puts colour);
  * a patch keeps only the pixels whose L is within HINT_L_TOLERANCE of its centre's, so a hint
    next to a line neither averages the two sides' colours nor spills across the line;
  * the count is geometric as in Zhang (keep adding while rand < 7/8), after a share
    NO_HINT_SHARE of examples that get no hints at all, so automatic colouring stays trained.
Every draw is a stateless random op of an explicit seed, so a (seed, example) pair always gives
the same hints: evaluation seeds per example, two runs compare.
"""
from __future__ import annotations

import numpy as np

AB_SCALE = 128.0            # koala.colour.AB_SCALE, repeated to keep this module import-light
PALETTE_AXIS_BINS = 11      # cells per axis of the ab grid
PALETTE_CELL = 22.0         # LAB units per cell
PALETTE_LOW = -PALETTE_AXIS_BINS * PALETTE_CELL / 2.0   # -121
PALETTE_BINS = PALETTE_AXIS_BINS * PALETTE_AXIS_BINS    # 121
PALETTE_SIZE = PALETTE_BINS + 1                         # last element: present flag
PALETTE_MIN_L = 5.0          # darker is ink
PALETTE_MAX_L = 99.0         # lighter is paper
NO_PALETTE = np.zeros(PALETTE_SIZE, np.float32)

HINT_CHANNELS = 3            # a / 128 * mask, b / 128 * mask, mask
MAX_TRAIN_HINTS = 64         # cap of the geometric count in training
MAX_PATCH = 9                # patch sides 1..MAX_PATCH in training (Zhang's range)
EVAL_PATCH = 5               # every evaluation hint is a 5 x 5 dot
HINT_L_TOLERANCE = 10.0      # L units: patch pixels farther from the centre's L are left out
FLAT_WINDOW = 5              # neighbourhood for the flatness of a location
FLAT_SCALE = 8.0             # L range (units) at which a location's weight drops by e
PAPER_INK_PENALTY = 3.0      # log-weight off for bare paper / ink: 20x less likely a place
HINT_CONTINUE = 7.0 / 8.0    # Zhang's geometric count: keep adding while rand < 7/8
NO_HINT_SHARE = 0.25         # training examples without hints
PALETTE_KEEP = 0.5           # training examples that see their own palette


# ---------------------------------------------------------------- palette

def _palette_cells_np(ab: np.ndarray) -> np.ndarray:
  idx = np.floor((np.asarray(ab, np.float32) - PALETTE_LOW) / PALETTE_CELL).astype(np.int64)
  idx = np.clip(idx, 0, PALETTE_AXIS_BINS - 1)
  return idx[..., 0] * PALETTE_AXIS_BINS + idx[..., 1]


def palette_np(l: np.ndarray, ab: np.ndarray) -> np.ndarray:
  """L (H, W[, 1]) in 0..100 and ab (H, W, 2) in LAB units -> float32 (PALETTE_SIZE,).

  An image with no coloured pixels (all ink or paper) gives the gray cell's share 1.0.
  """
  l = np.asarray(l, np.float32).reshape(np.shape(ab)[:-1])
  cells = _palette_cells_np(ab)
  keep = (l >= PALETTE_MIN_L) & (l <= PALETTE_MAX_L)
  if not keep.any():
    keep = np.ones_like(keep)
  hist = np.bincount(cells[keep].ravel(), minlength=PALETTE_BINS).astype(np.float64)
  return np.append(hist / hist.sum(), 1.0).astype(np.float32)


def palette_tf(l, ab):
  """The TensorFlow twin of `palette_np` (same numbers): usable in tf.data and tf.function.

  l: (H, W) or (H, W, 1) in 0..100; ab: (H, W, 2) in LAB units; any static or dynamic H, W.
  """
  import tensorflow as tf
  ab = tf.cast(ab, tf.float32)
  l = tf.reshape(tf.cast(l, tf.float32), tf.shape(ab)[:-1])
  idx = tf.cast(tf.floor((ab - PALETTE_LOW) / PALETTE_CELL), tf.int32)
  idx = tf.clip_by_value(idx, 0, PALETTE_AXIS_BINS - 1)
  cells = tf.reshape(idx[..., 0] * PALETTE_AXIS_BINS + idx[..., 1], [-1])
  keep = tf.reshape((l >= PALETTE_MIN_L) & (l <= PALETTE_MAX_L), [-1])
  weight = tf.cast(keep, tf.float32)
  weight = tf.cond(tf.reduce_any(keep), lambda: weight, lambda: tf.ones_like(weight))
  hist = tf.math.unsorted_segment_sum(weight, cells, PALETTE_BINS)
  return tf.concat([hist / tf.reduce_sum(hist), [1.0]], axis=0)


def palette_centres() -> np.ndarray:
  """(PALETTE_BINS, 2): the ab at the centre of each cell, in the histogram's order."""
  c = PALETTE_LOW + PALETTE_CELL * (np.arange(PALETTE_AXIS_BINS) + 0.5)
  a, b = np.meshgrid(c, c, indexing="ij")
  return np.stack([a.ravel(), b.ravel()], axis=-1).astype(np.float32)


# ---------------------------------------------------------------- hint planes

def encode_hints_np(ab: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """ab (S, S, 2) in LAB units and mask (S, S) or (S, S, 1) -> hint planes (S, S, 3) float32.

  Pixels where mask is 0 become (0, 0, 0) whatever ab holds there.
  """
  mask = (np.asarray(mask).reshape(np.shape(ab)[:-1]) > 0).astype(np.float32)[..., None]
  ab_norm = np.asarray(ab, np.float32) / AB_SCALE * mask
  return np.concatenate([ab_norm, mask], axis=-1).astype(np.float32)


def no_hints(size: int) -> np.ndarray:
  """All-zero hint planes (S, S, 3): no hints."""
  return np.zeros((size, size, HINT_CHANNELS), np.float32)


def decode_hints_np(hints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Hint planes (S, S, 3) -> (ab in LAB units (S, S, 2), mask bool (S, S))."""
  hints = np.asarray(hints, np.float32)
  return hints[..., :2] * AB_SCALE, hints[..., 2] > 0.5


def resize_hints_tf(hints, size: int):
  """Hint planes (..., H, W, 3) -> (..., size, size, 3), still in the planes' layout.

  A target pixel is hinted when any source pixel under it is; its colour is the mean of those
  hinted pixels' colours (area averages of a * mask and of mask, divided). Used when a model
  works below 224 and for a user's hint image of another size.
  """
  import tensorflow as tf
  hints = tf.cast(hints, tf.float32)
  pooled = tf.image.resize(hints, (size, size), method="area")
  mask = pooled[..., 2:3]
  hinted = tf.cast(mask > 1e-6, tf.float32)
  ab = pooled[..., :2] / tf.maximum(mask, 1e-6) * hinted
  return tf.concat([ab, hinted], axis=-1)


# ---------------------------------------------------------------- hint sampling

def training_hint_count(seed, max_hints: int = MAX_TRAIN_HINTS):
  """A training example's number of hints (int32 scalar), from a (2,) int seed: 0 for a share
  NO_HINT_SHARE, else 1 + geometric (keep adding while rand < HINT_CONTINUE), capped."""
  import tensorflow as tf
  u = tf.random.stateless_uniform([max_hints + 1], seed=seed)
  # 1 + the number of leading draws below HINT_CONTINUE among u[1:].
  stops = tf.concat([tf.cast(u[1:] >= HINT_CONTINUE, tf.int32), [1]], axis=0)
  n = 1 + tf.cast(tf.argmax(stops), tf.int32)
  n = tf.minimum(n, max_hints)
  return tf.where(u[0] < NO_HINT_SHARE, 0, n)


def _flatness_logits(l):
  """(S, S, 1) L -> (S*S,) log-weights: flat neighbourhoods likely, lines and edges not, and
  bare paper or ink (the letterbox's white padding among them) PAPER_INK_PENALTY less likely."""
  import tensorflow as tf
  x = l[None]
  hi = tf.nn.max_pool2d(x, FLAT_WINDOW, 1, "SAME")
  lo = -tf.nn.max_pool2d(-x, FLAT_WINDOW, 1, "SAME")
  paper_or_ink = tf.cast((x > PALETTE_MAX_L) | (x < PALETTE_MIN_L), tf.float32)
  return tf.reshape(-(hi - lo) / FLAT_SCALE - PAPER_INK_PENALTY * paper_or_ink, [-1])


def sample_hints_tf(l, ab, n_hints, seed, max_hints: int, patch: int | None = None):
  """One example's hint planes, drawn from its true colours (Zhang et al., adapted to manga).

  l: (S, S, 1) L in 0..100; ab: (S, S, 2) in LAB units; n_hints: int32 scalar <= max_hints
  (the number of hints used); seed: (2,) int; max_hints: a Python int (the draw's static size);
  patch: a fixed patch side (evaluation), or None for Zhang's 1..MAX_PATCH per hint (training).
  -> (S, S, 3) float32 hint planes. Where hints overlap, the later one wins, deterministically.
  """
  import tensorflow as tf
  l = tf.cast(l, tf.float32)
  ab = tf.cast(ab, tf.float32)
  size = tf.shape(l)[0]
  seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
  centres = tf.random.stateless_categorical(_flatness_logits(l)[None], max_hints,
                                            seed=seeds[0], dtype=tf.int32)[0]     # (K,)
  if patch is None:
    sides = tf.random.stateless_uniform([max_hints], seeds[1], 1, MAX_PATCH + 1, tf.int32)
  else:
    sides = tf.fill([max_hints], int(patch))
  cy, cx = centres // size, centres % size
  offsets = tf.range(MAX_PATCH) - MAX_PATCH // 2                        # -4..4
  lo = -(sides // 2)                                                     # (K,)
  inside_1d = ((offsets[None] >= lo[:, None])
               & (offsets[None] < (lo + sides)[:, None]))                # (K, 9)
  ys = cy[:, None, None] + offsets[None, :, None]                        # (K, 9, 1)
  xs = cx[:, None, None] + offsets[None, None, :]                        # (K, 1, 9)
  in_patch = inside_1d[:, :, None] & inside_1d[:, None, :]               # (K, 9, 9)
  on_image = (ys >= 0) & (ys < size) & (xs >= 0) & (xs < size)
  flat_idx = tf.clip_by_value(ys, 0, size - 1) * size + tf.clip_by_value(xs, 0, size - 1)
  l_flat, ab_flat = tf.reshape(l, [-1]), tf.reshape(ab, [-1, 2])
  l_patch = tf.gather(l_flat, flat_idx)                                   # (K, 9, 9)
  l_centre = tf.gather(l_flat, centres)[:, None, None]
  use = in_patch & on_image & (tf.abs(l_patch - l_centre) <= HINT_L_TOLERANCE)
  usef = tf.cast(use, tf.float32)
  ab_patch = tf.gather(ab_flat, flat_idx)                                 # (K, 9, 9, 2)
  colour = (tf.reduce_sum(ab_patch * usef[..., None], axis=[1, 2])
            / tf.reduce_sum(usef, axis=[1, 2])[:, None])                  # (K, 2); centre in use
  active = tf.range(max_hints) < tf.cast(n_hints, tf.int32)
  # Winner map: each pixel keeps the highest-numbered active hint that marks it (0 = none).
  rank = tf.where(use & active[:, None, None],
                  (tf.range(max_hints) + 1)[:, None, None], 0)
  winner = tf.math.unsorted_segment_max(tf.reshape(rank, [-1]), tf.reshape(flat_idx, [-1]),
                                        size * size)
  winner = tf.maximum(winner, 0)      # segments with no entries come back as the int minimum
  mask = tf.cast(winner > 0, tf.float32)[:, None]
  hint_ab = tf.gather(colour, tf.maximum(winner - 1, 0)) / AB_SCALE * mask
  return tf.reshape(tf.concat([hint_ab, mask], axis=-1), [size, size, HINT_CHANNELS])
