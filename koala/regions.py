"""The regions of a manga page, where a user's colour dot spreads and where it stops (NumPy).

A dot on a manga page means "this region is this colour": the paper enclosed by ink lines, or
an area of one screentone, up to its lines, as Krita's Colorize Mask and LazyBrush fill it. This
module is the reference definition of those regions, in NumPy; the served graph computes the
same with TensorFlow ops (serving/tf_regions.py), and tests/test_regions.py holds the two equal.
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
FLATTEN_MIN_PIXELS = 16      # fill pixels: smaller regions (lettering's holes, crumbs) are not
                             # laid flat
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


def _sum3(x: np.ndarray) -> np.ndarray:
  p = np.pad(x, ((1, 1), (1, 1), (0, 0)))
  rows = p[:-2] + p[1:-1] + p[2:]
  return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


def spread(flat: np.ndarray, known: np.ndarray, fillable: np.ndarray, steps: int) -> np.ndarray:
  """Each unknown fillable pixel next to known ones takes their mean, `steps` times."""
  known = known.astype(np.float32)[..., None]
  fillable = fillable.astype(np.float32)[..., None]
  state = np.concatenate([flat * known, known], -1).astype(np.float32)
  for _ in range(steps):
    sums = _sum3(state)
    new = (sums[..., -1:] > 0).astype(np.float32) * (1.0 - state[..., -1:]) * fillable
    state = state + new * (sums / np.maximum(sums[..., -1:], np.float32(1e-6)) - state)
  return np.where(state[..., -1:] > 0, state[..., :-1], flat)


def blend_distance(grid_hw, ab_hw) -> int:
  """Fill pixels within which bilinear upsampling of the model's ab mixes the two sides of a
  line: one model pixel, and one more for the fill grid's step."""
  return int(np.ceil(np.float32(max(grid_hw[0] / np.float32(ab_hw[0]),
                                    grid_hw[1] / np.float32(ab_hw[1]))))) + 1


def _resize(x: np.ndarray, hw) -> np.ndarray:
  import cv2
  out = cv2.resize(x, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_LINEAR)
  return out.reshape(tuple(hw) + x.shape[2:])


def flatten(ab: np.ndarray, labels: np.ndarray, known: np.ndarray,
            min_pixels: int = FLATTEN_MIN_PIXELS) -> tuple[np.ndarray, np.ndarray]:
  """The model's ab on the fill grid laid flat per region (Style2Paints' flattening,
  DanbooRegion): each region of at least `min_pixels` takes the mean ab of its pixels away
  from the lines (`known`; all of them where none is). -> (ab, flattened mask)."""
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
  return np.where(flat[..., None], mean[lab], ab), flat


def manga_page(gray: np.ndarray, ab_box: np.ndarray, hints_rgba: np.ndarray | None = None,
               closing: int = DEFAULT_CLOSING, r: int | None = None,
               flat_regions: bool = False) -> np.ndarray:
  """A coloured manga page: uint8 gray (H, W), the model's ab over the page's box (h, w, 2) in
  LAB units, an optional hint image (any size, RGBA) -> uint8 sRGB (H, W, 3). The reference of
  serving/tf_fill.py's `manga_colour_page` (its docstring says why each step)."""
  from koala import colour
  page = page_regions(gray, closing, r, hints_rgba)
  r, grid = page["r"], page["levels"].shape
  ab = _resize(np.asarray(ab_box, np.float32), grid)
  flat = colour.paper_colour_table()[colour.paper_colour_index(ab)]
  ink = page["ink"]
  blend = blend_distance(grid, ab_box.shape)
  known = ~window_any(ink, blend)
  if flat_regions:
    ab, flattened = flatten(ab, page["labels"], known)
    flat = colour.paper_colour_table()[colour.paper_colour_index(ab)]
    known |= flattened
  if (page["seed"] >= 0).any():
    dots = region_colours(page["labels"], page["seed"])
    dotted = dots >= 0
    flat = np.where(dotted[..., None], unpack_rgb(np.maximum(dots, 0)) / np.float32(255.0),
                    flat).astype(np.float32)
    known |= dotted
  flat = spread(flat, known, ~ink, max(blend + 1, closing + 1))
  flat = spread(flat, ~ink, ink, 2)
  paper = (~ink).astype(np.float32)[..., None]
  full = _resize(np.concatenate([flat * paper, paper, flat], -1), (r * grid[0], r * grid[1]))
  full = full[:gray.shape[0], :gray.shape[1]]
  weight = full[..., 3:4]
  full = np.where(weight > 1e-3, full[..., :3] / np.maximum(weight, np.float32(1e-3)),
                  full[..., 4:])
  return (full * gray.astype(np.float32)[..., None] + np.float32(0.5)).astype(np.uint8)
