"""The regions of a manga page, where a user's colour dot spreads and where it stops (NumPy).

A dot on a manga page means "this region is this colour": the paper enclosed by ink lines, or
an area of one screentone, up to its lines, as Krita's Colorize Mask and LazyBrush fill it. This
module is the reference definition of those regions, in NumPy; the served graph computes the
same with TensorFlow ops (trainer/export/regions.py), and tests/test_regions.py holds the two equal.
Everything works on the fill grid: the page reduced by a whole factor r (`fill_reduction`), so
that a page costs what a ~0.6 Mpx image does.

  1. Descreen. Each fill pixel's r x r block is summed, then blurred with a binomial kernel, in
     integers (so NumPy and TensorFlow agree exactly): the page as seen from reading distance,
     about a 2-page-pixel Gaussian, in which a screentone is an even gray.
  2. Tone levels. The descreened page is cut at TONE_EDGES into levels: paper, light tone, mid
     tone, and ink (darkest; solid blacks, lines of 2 px and more). A level change is a boundary:
     a dot on a screened area fills the area of its tone, not the whole figure.
  3. Barriers. Ink-level pixels, and near paper-level ground (NEAR_PAPER) every pixel whose
     block holds a pixel darker than SHARP_INK: lines are drawn on paper, and a thin one
     disappears in the blur but must still stop a fill; deep inside a tone area the screen's own
     dots are this dark, so there the tone levels alone decide. Lines a user draws in the hint
     image in pure black (LINE_RGB) are barriers too. Then the
     barriers grow by `closing` fill pixels, which closes gaps of about 2 x closing fill pixels
     in the lines (the most common complaint about every fill tool: colour leaking through a
     gap). A region's pixels under that growth are given back to it by the composition.
  4. Components: 4-connected pixels of one tone level that are not barriers.
  5. Dots: each fill pixel under an opaque hint pixel is a seed of that pixel's colour (the most
     opaque hint pixel wins, then the largest packed colour: deterministic, never a blend of the
     user's colours). A seed on a barrier seeds nothing: a dot on a line or on ink colours only
     the regions its other pixels touch, or nothing.
  6. Region colours: a region whose seeds all have one colour takes it whole. A region with
     several colours is split by distance through the region: breadth-first waves from all its
     seeds at once (`split_waves`), within the box around such regions, for at most
     SPLIT_STEPS waves; what they did not reach (more than ~SPLIT_STEPS fill pixels from every
     dot) keeps the model's colour, as does a region with no seed.
"""
from __future__ import annotations

import numpy as np

FILL_PIXELS = 600_000        # the fill grid: the page reduced by a whole factor >= 2 to at most
                             # about this many pixels, so its cost is that of a fixed-size image
TONE_EDGES = (64, 128, 192)  # descreened gray levels that part ink | dark | mid | paper
SHARP_INK = 128              # near paper, a block with a pixel below this is a line
NEAR_PAPER = 2               # fill pixels: how near paper-level ground a line's block lies
DEFAULT_CLOSING = 1          # fill pixels the barriers grow by (closes ~2-fill-pixel gaps)
DEFAULT_FLAT_REGIONS = True  # a manga page lays the model's colour flat per region
FLATTEN_MIN_PIXELS = 16      # fill pixels: smaller regions (lettering's holes, crumbs) are not
                             # laid flat
INK_STEPS = 2                # grid pixels the regions' colours grow into the ink
SPLIT_STEPS = 96             # breadth-first waves of a several-colour region's split: it
                             # reaches ~100 fill pixels from each dot, so it costs a bounded time
NO_COLOUR = -1               # packed colour of "no seed" / "no dot's colour"
LINE_RGB = (0, 0, 0)         # a hint pixel of this colour draws a line rather than a dot
LINE_PACKED = 0


def fill_reduction(height: int, width: int) -> int:
  """The whole factor the fill grid reduces a page by: 2, or more for a page over
  4 x FILL_PIXELS."""
  return max(2, int(np.ceil(np.sqrt(float(height) * float(width) / FILL_PIXELS))))


def binomial_order(r: int) -> int:
  """The descreening kernel's order n (n + 1 taps, sd sqrt(n) / 2 fill pixels): about 2 page
  pixels at reduction r, at least [1, 2, 1]."""
  return 4 if r <= 2 else 2


def binomial_kernel(n: int) -> np.ndarray:
  k = np.array([1], np.int64)
  for _ in range(n):
    k = np.convolve(k, [1, 1])
  return k


def block_sum_and_min(gray: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
  """uint8 (H, W) -> per r x r block: the sum of its levels (int64) and its darkest level, over
  the page padded with paper to whole blocks."""
  h, w = gray.shape
  hh, ww = -(-h // r), -(-w // r)
  padded = np.full((hh * r, ww * r), 255, np.uint8)
  padded[:h, :w] = gray
  blocks = padded.reshape(hh, r, ww, r)
  return blocks.sum(axis=(1, 3), dtype=np.int64), blocks.min(axis=(1, 3))


def descreen(sums: np.ndarray, n: int) -> np.ndarray:
  """Block sums -> blurred by the binomial kernel of order n along both axes (edges mirrored),
  int64: weight sum r^2 * 4^n."""
  k = binomial_kernel(n)
  half = n // 2
  x = np.pad(sums, ((half, half), (0, 0)), mode="symmetric")
  x = sum(k[i] * x[i:i + sums.shape[0]] for i in range(n + 1))
  x = np.pad(x, ((0, 0), (half, half)), mode="symmetric")
  return sum(k[i] * x[:, i:i + sums.shape[1]] for i in range(n + 1))


def tone_levels(descreened: np.ndarray, r: int, n: int) -> np.ndarray:
  """-> int8 level per fill pixel: 0 ink, 1 dark tone, 2 mid tone, 3 paper."""
  weight = r * r * 4 ** n
  return sum((descreened >= e * weight).astype(np.int8) for e in TONE_EDGES)


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
  """Binary dilation by a (2 radius + 1)^2 square."""
  if radius <= 0:
    return mask
  h, w = mask.shape
  p = np.pad(mask, radius)
  out = np.zeros_like(mask)
  for dy in range(2 * radius + 1):
    for dx in range(2 * radius + 1):
      out |= p[dy:dy + h, dx:dx + w]
  return out


def barriers(levels: np.ndarray, darkest: np.ndarray, closing: int = DEFAULT_CLOSING,
             drawn: np.ndarray | None = None):
  """-> (ink: bool, barrier: bool): ink (and the lines a user `drawn` in the hint image) before
  and after growing by `closing` fill pixels."""
  near_paper = grow(levels == len(TONE_EDGES), NEAR_PAPER)
  ink = (levels == 0) | (near_paper & (darkest < SHARP_INK))
  if drawn is not None:
    ink |= drawn
  return ink, grow(ink, closing)


def components(levels: np.ndarray, barrier: np.ndarray) -> np.ndarray:
  """-> int64 label per fill pixel (-1 on barriers): 4-connected, one tone level each."""
  import scipy.ndimage
  labels = np.full(levels.shape, -1, np.int64)
  top = 0
  for level in range(len(TONE_EDGES) + 1):
    lab, count = scipy.ndimage.label((levels == level) & ~barrier)
    labels = np.where(lab > 0, lab - 1 + top, labels)
    top += count
  return labels


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
  rgb = np.asarray(rgb, np.int64)
  return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
  packed = np.asarray(packed, np.int64)
  return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1).astype(np.uint8)


def seeds(hints_rgba: np.ndarray, page_hw: tuple[int, int], grid_hw: tuple[int, int],
          r: int) -> tuple[np.ndarray, np.ndarray]:
  """A hint image (any size, stretched over the page) -> (packed sRGB seed per fill pixel or
  NO_COLOUR, the lines drawn in it: bool). A hint pixel's centre lands on page pixel
  floor((i + 0.5) * H / h), which lies in fill pixel that // r. A pure black hint pixel
  (LINE_RGB) is a line, not a colour: how a user closes a gap that the closing leaves open."""
  hh, ww = grid_hw
  alpha = hints_rgba[..., 3]
  ys, xs = np.nonzero(alpha > 0)
  out = np.full(hh * ww, -1, np.int64)
  drawn = np.zeros(hh * ww, bool)
  if len(ys):
    h, w = alpha.shape
    py = np.minimum(((ys + 0.5) * page_hw[0] / h).astype(np.int64), page_hw[0] - 1) // r
    px = np.minimum(((xs + 0.5) * page_hw[1] / w).astype(np.int64), page_hw[1] - 1) // r
    packed = pack_rgb(hints_rgba[ys, xs, :3])
    line = packed == LINE_PACKED
    drawn[(py * ww + px)[line]] = True
    key = (alpha[ys, xs].astype(np.int64) << 24) | packed
    np.maximum.at(out, (py * ww + px)[~line], key[~line])
  return (np.where(out >= 0, out & 0xFFFFFF, -1).reshape(hh, ww), drawn.reshape(hh, ww))


NEIGHBOURS_4 = ((-1, 0), (1, 0), (0, -1), (0, 1))
NEIGHBOURS_8 = NEIGHBOURS_4 + ((-1, -1), (-1, 1), (1, -1), (1, 1))


def _neighbour(x: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
  """The value of each pixel's neighbour at (dy, dx) (each -1, 0 or 1), `fill` outside."""
  p = np.pad(x, 1, constant_values=fill)
  h, w = x.shape
  return p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


def split_waves(labels: np.ndarray, reached: np.ndarray, split: np.ndarray,
                steps: int = SPLIT_STEPS) -> np.ndarray:
  """Breadth-first waves of colours (int, -1 = none) through each region: each wave, every
  unreached pixel to split takes the largest colour among its reached neighbours of the same
  region; waves alternate 4 and 8 neighbours (an octagonal distance, near the Euclidean),
  until none grows or `steps` waves."""
  same = {d: _neighbour(labels, *d, -2) == labels for d in NEIGHBOURS_8}
  for i in range(steps):
    best = reached
    for d in (NEIGHBOURS_4 if i % 2 == 0 else NEIGHBOURS_8):
      best = np.maximum(best, np.where(same[d], _neighbour(reached, *d, -1), -1))
    grown = np.where(split & (reached < 0), best, reached)
    if np.array_equal(grown, reached):
      break
    reached = grown
  return reached


def region_colours(labels: np.ndarray, seed: np.ndarray, steps: int = SPLIT_STEPS) -> np.ndarray:
  """-> packed colour per fill pixel: its region's dot colour (split by distance through the
  region where it has several), NO_COLOUR outside dotted regions and on barriers."""
  seed = np.where(labels >= 0, seed, -1)
  n = labels.max() + 1
  if n <= 0:
    return np.full(labels.shape, -1, np.int64)
  inside = labels >= 0
  lab = np.where(inside, labels, 0)
  hi = np.full(n, -1, np.int64)
  np.maximum.at(hi, lab[seed >= 0], seed[seed >= 0])
  lo = np.full(n, np.iinfo(np.int64).max, np.int64)
  np.minimum.at(lo, lab[seed >= 0], seed[seed >= 0])
  several = (hi >= 0) & (lo != hi)
  out = np.where(inside, hi[lab], -1)
  split = inside & several[lab]
  if split.any():
    rows, cols = np.nonzero(split.any(1))[0], np.nonzero(split.any(0))[0]
    box = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    reached = np.full(labels.shape, -1, np.int64)
    reached[box] = split_waves(labels[box], np.where(split[box], seed[box], -1), split[box],
                               steps)
    out = np.where(split, reached, out)
  return out


def page_regions(gray: np.ndarray, closing: int = DEFAULT_CLOSING, r: int | None = None,
                 hints_rgba: np.ndarray | None = None) -> dict:
  """The page's fill grid: its reduction r, tone levels, ink, barriers, region labels, and the
  seeds of a hint image (NO_COLOUR on barriers; all NO_COLOUR without one)."""
  r = fill_reduction(*gray.shape) if r is None else r
  sums, darkest = block_sum_and_min(gray, r)
  n = binomial_order(r)
  levels = tone_levels(descreen(sums, n), r, n)
  seed, drawn = (seeds(hints_rgba, gray.shape, levels.shape, r) if hints_rgba is not None
                 else (np.full(levels.shape, -1, np.int64), None))
  ink, barrier = barriers(levels, darkest, closing, drawn)
  return {"r": r, "levels": levels, "ink": ink, "barrier": barrier,
          "labels": components(levels, barrier), "seed": np.where(barrier, -1, seed)}


# ---------------------------------------------------------------- the manga page's flats

def window_any(mask: np.ndarray, radius: int) -> np.ndarray:
  """bool (h, w) -> True where the (2 radius + 1)^2 window holds a True."""
  return grow(mask, radius)


def blend_distance(grid_hw, ab_hw) -> int:
  """Fill pixels within which bilinear upsampling of the model's ab mixes the two sides of a
  line: one model pixel, and one more for the fill grid's step."""
  return int(np.ceil(max(np.float32(grid_hw[0]) / np.float32(ab_hw[0]),
                         np.float32(grid_hw[1]) / np.float32(ab_hw[1])))) + 1


def blend_distance_tf(grid_hw, ab_hw):
  """`blend_distance` of two int32 shape tensors, as a graph op (int32)."""
  import tensorflow as tf
  f = lambda i: tf.cast(grid_hw[i], tf.float32) / tf.cast(ab_hw[i], tf.float32)
  return tf.cast(tf.math.ceil(tf.maximum(f(0), f(1))), tf.int32) + 1


def grow_values(values: np.ndarray, free: np.ndarray, steps: int) -> np.ndarray:
  """Non-negative int values (table indices, packed colours; -1 = none) grown up to `steps`
  grid pixels into the `free` pixels that have none, each taking the largest of its
  4-neighbours' (never a blend of two colours; a diagonal step could cross a 1-pixel diagonal
  line)."""
  x = values.astype(np.float32)
  for _ in range(steps):
    p = np.pad(x, 1, constant_values=-1.0)
    grown = np.maximum(np.maximum(p[:-2, 1:-1], p[2:, 1:-1]), np.maximum(p[1:-1, :-2], p[1:-1, 2:]))
    x = np.where(free & (x < 0), grown, x)
  return x.astype(np.int64)


def _resize(x: np.ndarray, hw) -> np.ndarray:
  import cv2
  out = cv2.resize(x, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_LINEAR)
  return out.reshape(tuple(hw) + x.shape[2:])


def flatten(ab: np.ndarray, labels: np.ndarray, known: np.ndarray,
            min_pixels: int = FLATTEN_MIN_PIXELS) -> np.ndarray:
  """The model's ab on the fill grid laid flat per region (Style2Paints' flattening,
  DanbooRegion): each region of at least `min_pixels` takes the mean ab of its pixels away
  from the lines (`known`; all of them where none is)."""
  inside = labels >= 0
  lab = np.where(inside, labels, 0)
  n = lab.max() + 1
  size = np.bincount(lab[inside], minlength=n)
  use = inside & known
  count = np.bincount(lab[use], minlength=n).astype(np.float64)
  sums = np.stack([np.bincount(lab[use], ab[..., c][use], minlength=n) for c in (0, 1)], -1)
  all_sums = np.stack([np.bincount(lab[inside], ab[..., c][inside], minlength=n)
                       for c in (0, 1)], -1)
  mean = np.where(count[:, None] > 0, sums / np.maximum(count, 1)[:, None],
                  all_sums / np.maximum(size, 1)[:, None]).astype(np.float32)
  flat = inside & (size >= min_pixels)[lab]
  return np.where(flat[..., None], mean[lab], ab)


def manga_page(gray: np.ndarray, ab_box: np.ndarray, hints_rgba: np.ndarray | None = None,
               closing: int = DEFAULT_CLOSING, r: int | None = None,
               flat_regions: bool = DEFAULT_FLAT_REGIONS) -> np.ndarray:
  """A coloured manga page: uint8 gray (H, W), the model's ab over the page's box (h, w, 2) in
  LAB units, an optional hint image (any size, RGBA) -> uint8 sRGB (H, W, 3). The reference of
  trainer/export/fill.py's `manga_colour_page` (its docstring says why each step); flat_regions
  lays the model's colour flat per region (`flatten`)."""
  from koala import colour
  page = page_regions(gray, closing, r, hints_rgba)
  r, grid, ink = page["r"], page["levels"].shape, page["ink"]
  blend = blend_distance(grid, ab_box.shape)
  near_ink = window_any(ink, blend)
  beside = near_ink & ~ink
  ab = _resize(np.asarray(ab_box, np.float32), grid)
  if flat_regions:
    ab = flatten(ab, page["labels"], ~near_ink)
  index = colour.paper_colour_index(ab)
  grown = grow_values(np.where(near_ink, -1, index), beside, blend + 1)
  grown = grow_values(grown, ink, INK_STEPS)
  flat = colour.paper_colour_table()[np.where(grown >= 0, grown, index)]
  if (page["seed"] >= 0).any():
    dots = grow_values(region_colours(page["labels"], page["seed"]), beside,
                       max(blend + 1, closing + 1))
    dots = grow_values(dots, ink, INK_STEPS)
    flat = np.where((dots >= 0)[..., None], unpack_rgb(np.maximum(dots, 0)) / np.float32(255.0),
                    flat).astype(np.float32)
  full = _resize(flat, (r * grid[0], r * grid[1]))[:gray.shape[0], :gray.shape[1]]
  return (full * gray.astype(np.float32)[..., None] + np.float32(0.5)).astype(np.uint8)
