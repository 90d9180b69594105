"""Manga renderings of colour art: the black-and-white page a user would send, drawn from the
colour image that the model must learn to give back.

Users send manga pages, not gray photographs: white paper, black ink (lines, solid blacks) and
screentone or hatching for the tones in between (SPEC, "Manga pages"). A colorizer trained only
on smooth grays has never seen a screen. `render_manga` draws such a page from colour art:

  * ink lines: XDoG on the art's lightness with manga-colorization v1's parameters (sigma 0.5,
    k 8, phi 89.25, gamma 0.95, eps -0.1) and its Otsu cut. At WORK_SIDE that cut inks every
    edge a few percent darker than its surround (a median 16% of the page on the eval art,
    where real pages have 9% ink of every kind), so ink is also kept to edges at least
    `line_contrast` below the DoG's zero (median 10% at 0.03);
  * solid black: the darkest `ink_share` of the art;
  * paper: the lightest `paper_share` of the art, cut at its own lightness quantile, so that a
    dark photo and a pale sketch both come out mostly white, as real pages do;
  * tones: the rest, split into 2-3 flat regions of equal area, each printed with one density
    of a tone-sheet series: clustered-dot halftone (circle, diamond or ellipse dots), a line
    screen, a stochastic (noise) screen or hatching, black on white;
  * a finish: clean pixels, anti-aliased (drawn at 2x, area-downscaled), a 1-bit scan, or JPEG,
    the last three softened by `blur` like print and scan.

Pages are drawn with the long side at WORK_SIDE = 4 x 224 pixels, so that a screen's pitch
relates to the page as it does on a scan that the model sees letterboxed to 224.

Every choice of a rendering is a `MangaStyle`, drawn from a seed by `draw_style`; a rendering is
a pure function of (art, style). Randomness comes only from numpy.random.default_rng. The pixel
decisions compare uint8 lightness, float32 fields made by elementwise arithmetic, or float64
blurs with cuts that sit half a level off the integer levels, so that the last-bit differences
between SIMD code paths cannot flip them (tests/test_manga.py renders on OpenCV's reference
paths too). The bytes do depend on the OpenCV and NumPy versions: bump RENDERING_NAME, which
manifests record, whenever the output changes.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import statistics

import cv2
import numpy as np

WORK_SIDE = 896
RENDERING_NAME = "manga-v1"

SCREENS = ("dots", "lines", "noise", "hatching")
DOT_SHAPES = ("circle", "diamond", "ellipse")
FINISHES = ("clean", "antialiased", "binary", "jpeg")
ELLIPSE_ASPECT = 0.6          # an elliptical dot's minor / major axis
PITCH_RANGE = (2.0, 32.0)     # px at WORK_SIDE; draw_style keeps to 4-10
TONE_MEDIAN, TONE_SIGMA = 5, 1.5   # flatten the art's lightness before cutting tone regions
NOISE_GRAIN = 0.12            # a noise screen's grain (Gaussian sigma) / its pitch
HATCH_SINGLE = 0.35           # hatching darker than this is cross-hatched
SHEET_DENSITIES = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)   # a tone-sheet series' coverages
PAPER_CUT = (50, 235)         # bounds of the paper cut in uint8 lightness (L * 255 / 100)
BLACK_CUT = (15, 70)          # bounds of the solid-black cut


@dataclasses.dataclass(frozen=True)
class MangaStyle:
  """Every choice of one rendering. Densities are ink coverage (0 = paper, 1 = black)."""
  screen: str = "dots"                 # one of SCREENS, for every tone region of the page
  pitch: float = 6.0                   # px at WORK_SIDE between screen cells / lines
  angle: float = 45.0                  # degrees in [0, 180)
  dot_shape: str = "circle"            # one of DOT_SHAPES (dots only)
  tone_levels: tuple[float, ...] = (0.2, 0.4)   # light -> dark, quantised like tone sheets
  paper_share: float = 0.55            # the lightest share of the art that becomes paper
  ink_share: float = 0.06              # the darkest share of the art that becomes solid black
  line_sigma: float = 0.35             # XDoG sigma, px at WORK_SIDE (line weight)
  line_k: float = 8.0                  # XDoG: sigma of the wide Gaussian / line_sigma
  line_phi: float = 89.25
  line_gamma: float = 0.95
  line_eps: float = -0.1
  line_contrast: float = 0.03          # ink only edges at least this much below the DoG's 0
  finish: str = "clean"                # one of FINISHES
  blur: float = 0.0                    # print and scan softness, px at WORK_SIDE (not clean)
  jpeg_quality: int = 75               # used by the jpeg finish
  noise_seed: int = 0                  # the stochastic screen's and the hatching's wobble

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value, kinds = getattr(self, field.name), _KINDS.get(field.type)
      _check(kinds is None or (isinstance(value, kinds) and not isinstance(value, bool)),
             f"{field.name} must be {'an integer' if field.type == 'int' else 'a number'}, "
             f"not {value!r}.")
    _check(isinstance(self.tone_levels, (tuple, list)) and all(
        isinstance(d, (int, float, np.floating)) and not isinstance(d, bool)
        for d in self.tone_levels), f"tone_levels must be a tuple of numbers, not "
           f"{self.tone_levels!r}.")
    object.__setattr__(self, "tone_levels", tuple(float(d) for d in self.tone_levels))
    _check(self.screen in SCREENS, f"screen must be one of {SCREENS}, not {self.screen!r}.")
    _check(self.dot_shape in DOT_SHAPES,
           f"dot_shape must be one of {DOT_SHAPES}, not {self.dot_shape!r}.")
    _check(self.finish in FINISHES, f"finish must be one of {FINISHES}, not {self.finish!r}.")
    _check(PITCH_RANGE[0] <= self.pitch <= PITCH_RANGE[1],
           f"pitch must be within {PITCH_RANGE} px, not {self.pitch}.")
    _check(0.0 <= self.angle < 180.0, f"angle must be within [0, 180) degrees, not {self.angle}.")
    levels = tuple(self.tone_levels)
    _check(1 <= len(levels) <= 4 and all(0.0 < d < 1.0 for d in levels)
           and all(a < b for a, b in zip(levels, levels[1:])),
           f"tone_levels must be 1-4 increasing densities within (0, 1), not {levels}.")
    _check(0.0 <= self.paper_share < 1.0,
           f"paper_share must be within [0, 1), not {self.paper_share}.")
    _check(0.0 <= self.ink_share < 1.0 - self.paper_share,
           f"ink_share must be within [0, 1 - paper_share), not {self.ink_share}.")
    _check(0.1 <= self.line_sigma <= 4.0,
           f"line_sigma must be within [0.1, 4] px, not {self.line_sigma}.")
    _check(1.0 < self.line_k <= 16.0, f"line_k must be within (1, 16], not {self.line_k}.")
    _check(self.line_phi > 0.0, f"line_phi must be positive, not {self.line_phi}.")
    _check(0.0 < self.line_gamma <= 1.0,
           f"line_gamma must be within (0, 1], not {self.line_gamma}.")
    _check(0.0 <= self.line_contrast <= 0.5,
           f"line_contrast must be within [0, 0.5], not {self.line_contrast}.")
    _check(0.0 <= self.blur <= 3.0, f"blur must be within [0, 3] px, not {self.blur}.")
    _check(self.blur == 0.0 or self.finish != "clean", "A clean finish takes no blur.")
    _check(1 <= self.jpeg_quality <= 100,
           f"jpeg_quality must be within [1, 100], not {self.jpeg_quality}.")
    _check(self.noise_seed >= 0, f"noise_seed must be non-negative, not {self.noise_seed}.")


_KINDS = {"float": (int, float, np.integer, np.floating), "int": (int, np.integer)}


def _check(ok: bool, message: str) -> None:
  if not ok:
    raise ValueError(message)


def draw_style(seed: int) -> MangaStyle:
  """A style drawn from `seed` alone, within the ranges that real tone sheets and pages span."""
  _check_seed(seed)
  rng = np.random.default_rng(seed)
  screen = SCREENS[rng.choice(len(SCREENS), p=[0.5, 0.15, 0.15, 0.2])]
  levels = np.sort(rng.choice(SHEET_DENSITIES, size=rng.integers(2, 4), replace=False))
  finish = FINISHES[rng.choice(len(FINISHES), p=[0.05, 0.45, 0.05, 0.45])]
  return MangaStyle(
      screen=screen,
      pitch=round(float(4.0 * 2.5 ** (rng.uniform() ** 2)), 2),     # 4-10, mostly fine
      angle=float(15 * rng.integers(0, 12)),
      dot_shape=DOT_SHAPES[rng.integers(len(DOT_SHAPES))],
      tone_levels=tuple(float(d) for d in levels),
      paper_share=round(float(rng.uniform(0.25, 0.50)), 3),
      ink_share=round(float(rng.uniform(0.01, 0.05)), 3),
      line_sigma=round(float(rng.uniform(0.3, 0.5)), 3),
      line_contrast=round(float(rng.uniform(0.025, 0.045)), 3),
      finish=finish,
      blur=0.0 if finish == "clean" else round(float(rng.uniform(0.2, 0.8)), 2),
      jpeg_quality=int(rng.integers(50, 91)),
      noise_seed=int(rng.integers(2 ** 63)))


def rendering_seed(content_hash: str, index: int) -> int:
  """The seed of an image's index-th rendering: the first 8 bytes of sha256("hash:index")."""
  _check(isinstance(content_hash, str) and content_hash != "",
         "content_hash must be a non-empty string.")
  _check(isinstance(index, (int, np.integer)) and not isinstance(index, bool) and index >= 0,
         f"index must be a non-negative integer, not {index!r}.")
  digest = hashlib.sha256(f"{content_hash}:{int(index)}".encode()).digest()
  return int.from_bytes(digest[:8], "big")


def _check_seed(seed) -> None:
  _check(isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0,
         f"seed must be a non-negative integer, not {seed!r}.")


def work_size(height: int, width: int) -> tuple[int, int]:
  """(H', W') with the long side at WORK_SIDE and the aspect kept."""
  scale = WORK_SIDE / max(height, width)
  return (min(WORK_SIDE, max(1, round(height * scale))),
          min(WORK_SIDE, max(1, round(width * scale))))


def render_manga(rgb: np.ndarray, seed: int | None = None,
                 style: MangaStyle | None = None) -> np.ndarray:
  """uint8 RGB (H, W, 3) colour art -> uint8 gray page (H', W'), long side WORK_SIDE (aspect
  kept; smaller art is upscaled with INTER_CUBIC, larger is area-downscaled). Exactly one of
  seed / style; the same art and seed give the same bytes."""
  _check(isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8,
         f"rgb must be a uint8 NumPy array, not {getattr(rgb, 'dtype', type(rgb).__name__)}.")
  _check(rgb.ndim == 3 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 1,
         f"rgb must have shape (H, W, 3), not {rgb.shape}.")
  _check((seed is None) != (style is None), "Give exactly one of seed and style.")
  if style is None:
    style = draw_style(seed)
  _check(isinstance(style, MangaStyle), "style must be a MangaStyle.")
  h, w = work_size(*rgb.shape[:2])
  art = np.ascontiguousarray(rgb)
  if (h, w) != art.shape[:2]:
    up = h * w > art.shape[0] * art.shape[1]
    art = cv2.resize(art, (w, h), interpolation=cv2.INTER_CUBIC if up else cv2.INTER_AREA)
  lightness = cv2.cvtColor(art, cv2.COLOR_RGB2Lab)[..., 0]   # uint8, L * 255 / 100
  scale = 1 if style.finish == "clean" else 2
  ink = _draw(lightness, style, scale)
  page = np.where(ink, np.uint8(0), np.uint8(255))
  if scale != 1:
    page = cv2.resize(page, (w, h), interpolation=cv2.INTER_AREA)
  if style.blur > 0.0:
    page = cv2.GaussianBlur(page, (0, 0), style.blur)
  if style.finish == "binary":
    page = np.where(page >= 128, np.uint8(255), np.uint8(0))
  elif style.finish == "jpeg":
    ok, data = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, style.jpeg_quality])
    if not ok:
      raise RuntimeError("OpenCV could not encode the page as JPEG.")
    page = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
  return page


def _draw(lightness: np.ndarray, style: MangaStyle, scale: int) -> np.ndarray:
  """The page's ink (bool) at `scale` x the work size: lines | solid black | screened tones.

  The fields that decide lines and tone regions are computed once at the work size in float64
  and bilinearly enlarged, so that a 2x drawing has smooth line edges, not doubled pixels."""
  h, w = lightness.shape
  tone_l = cv2.GaussianBlur(cv2.medianBlur(lightness, TONE_MEDIAN).astype(np.float64), (0, 0),
                            TONE_SIGMA)
  diff, is_line = _xdog(lightness, style)
  black, edges = _tone_edges(lightness, style)
  if scale != 1:
    size = (w * scale, h * scale)
    tone_l = cv2.resize(tone_l, size, interpolation=cv2.INTER_LINEAR)
    diff = cv2.resize(diff, size, interpolation=cv2.INTER_LINEAR)
  band = np.zeros(tone_l.shape, np.uint8)     # 0 = the darkest tone ... n - 1, n = paper
  for edge in edges:
    band += tone_l >= edge
  ink = _screen(style, band, scale, np.random.default_rng(style.noise_seed))
  ink |= tone_l <= black
  ink |= is_line(diff)
  return ink


def _quantile(cdf: np.ndarray, share: float) -> float:
  """The lower quantile of uint8 values from their cumulative histogram (no sort of the image)."""
  rank = math.floor(share * (int(cdf[-1]) - 1))
  return float(np.searchsorted(cdf, rank, side="right"))


def _tone_edges(lightness: np.ndarray, style: MangaStyle) -> tuple[float, np.ndarray]:
  """The solid-black cut and the band edges (ascending, the last is paper) in uint8 lightness,
  from the art's own quantiles, so that a dark photo and a pale sketch both get their share of
  paper; the mid tones between are split into bands of equal area.

  The cuts are integer levels moved by half a level: the smoothed lightness of a flat region is
  its integer level give or take a rounding error that differs between machines, and a cut
  there would flip the whole region."""
  cdf = np.cumsum(np.bincount(lightness.ravel(), minlength=256))
  total = float(cdf[-1])
  paper = int(np.clip(_quantile(cdf, 1.0 - style.paper_share), *PAPER_CUT))
  black = min(int(np.clip(_quantile(cdf, style.ink_share), *BLACK_CUT)), paper - 20)
  n = len(style.tone_levels)
  lo, hi = cdf[black] / total, cdf[paper - 1] / total    # shares at or below black, below paper
  inner = [min(max(int(_quantile(cdf, lo + (hi - lo) * i / n)), black + 1), paper - 1)
           if hi > lo else black + (paper - black) * i // n for i in range(1, n)]
  return black + 0.5, np.array(inner + [paper], np.float64) - 0.5


def _xdog(lightness: np.ndarray, style: MangaStyle):
  """manga-colorization v1's XDoG with its Otsu cut, as (DoG field, ink test on that field).

  v1 maps the DoG d to 1 where d < eps and to 1 + tanh(phi d) elsewhere, min-max scales it and
  cuts at Otsu's threshold. That map is monotonic above eps, so the cut is found on a 1/16
  sample and turned back into a cut on d: no tanh per pixel, and the field that is enlarged for
  a 2x drawing is the smooth d."""
  image = lightness.astype(np.float64) * (1.0 / 255.0)
  narrow = cv2.GaussianBlur(image, (0, 0), style.line_sigma)
  wide = cv2.GaussianBlur(image, (0, 0), style.line_sigma * style.line_k)
  diff = narrow - style.line_gamma * wide
  sample = diff[::4, ::4]
  response = np.where(sample < style.line_eps, 1.0, 1.0 + np.tanh(style.line_phi * sample))
  lo, hi = float(response.min()), float(response.max())
  if hi - lo < 1e-6:
    return diff, lambda d: np.zeros(d.shape, bool)        # flat art: no lines
  cut = lo + (hi - lo) * _otsu((response - lo) * (1.0 / (hi - lo)))
  # 1 + tanh(phi d) < cut  <=>  d < atanh(cut - 1) / phi
  d_cut = math.atanh(min(max(cut - 1.0, -1.0 + 1e-12), 1.0 - 1e-12)) / style.line_phi
  eps, d_cut = style.line_eps, min(d_cut, -style.line_contrast)
  if 1.0 < cut:                 # the strong edges (d < eps, mapped to 1) are ink too
    return diff, lambda d: d < max(d_cut, eps)
  return diff, lambda d: (d >= eps) & (d < d_cut)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
  """Otsu's threshold of values in [0, 1] (the cut between two classes of most variance)."""
  counts = np.bincount(np.minimum((values * bins).astype(np.int64), bins - 1).ravel(),
                       minlength=bins).astype(np.float64)
  centres = (np.arange(bins) + 0.5) / bins
  w0 = np.cumsum(counts)
  m0 = np.cumsum(counts * centres)
  total, mean = w0[-1], m0[-1]
  w1 = total - w0
  with np.errstate(divide="ignore", invalid="ignore"):
    between = (mean * w0 / total - m0) ** 2 / (w0 * w1 / total)
  between = np.nan_to_num(between[:-1], nan=-1.0, posinf=-1.0)
  return float((np.argmax(between) + 1) / bins)


def _screen(style: MangaStyle, band: np.ndarray, scale: int,
            rng: np.random.Generator) -> np.ndarray:
  """Ink of the tone regions. Band b < n (darkest first) prints tone_levels[n - 1 - b]; band n
  is paper. Each band's density becomes one scalar cut on the screen's field, so a region's ink
  share is its tone sheet's density, as on a printed screen. The fields are float32 made by
  elementwise arithmetic only, which rounds the same at any SIMD width."""
  levels = np.array(style.tone_levels[::-1] + (0.0,), np.float64)   # indexed by band
  h, w = band.shape
  pitch = style.pitch * scale
  if style.screen == "noise":     # grains: blurred white noise at the work size, unit variance
    sigma = NOISE_GRAIN * style.pitch
    ksize = int(round(sigma * 8 + 1)) | 1
    field = cv2.GaussianBlur(rng.standard_normal((h // scale, w // scale)), (ksize, ksize), sigma)
    field *= 1.0 / float(np.sum(cv2.getGaussianKernel(ksize, sigma, cv2.CV_64F) ** 2))
    if scale != 1:
      field = cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)
    cuts = np.array([_normal_quantile(d) for d in levels])
    return field < cuts[band]
  u, v = _rotated(h, w, pitch, style.angle)
  if style.screen == "dots":
    values, share = _spot_cuts(style.dot_shape)
    cuts = np.where(levels > 0.0, np.interp(levels, share, values), -np.inf)
    return _spot(style.dot_shape, _phase(u), _phase(v)) < cuts.astype(np.float32)[band]
  if style.screen == "lines":
    return np.abs(_phase(v)) < (levels * 0.5).astype(np.float32)[band]
  # hatching: wobbly hand-drawn strokes; the darker levels add a second set across the first
  single = levels <= HATCH_SINGLE
  width = (np.where(single, levels, 1.0 - np.sqrt(1.0 - levels)) * 0.5).astype(np.float32)[band]
  wobble = _wobble(h, w, pitch, rng)
  ink = np.abs(_phase(v + wobble)) < width
  _, across = _rotated(h, w, pitch, (style.angle + 90.0) % 180.0)
  ink |= ~single[band] & (np.abs(_phase(across - wobble)) < width)
  return ink


def _phase(t: np.ndarray) -> np.ndarray:
  """Position within the screen cell, in [-0.5, 0.5], from the nearest cell centre. The array is
  overwritten: these fields are big and used once."""
  t -= np.rint(t)
  return t


def _rotated(h: int, w: int, pitch: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
  """Pixel centres in screen cells: u along the screen angle, v across it."""
  a = math.radians(angle)
  c, s = np.float32(math.cos(a) / pitch), np.float32(math.sin(a) / pitch)
  x = (np.arange(w, dtype=np.float32) + np.float32(0.5))[None, :]
  y = (np.arange(h, dtype=np.float32) + np.float32(0.5))[:, None]
  return x * c + y * s, y * c - x * s


def _spot(shape: str, fu: np.ndarray, fv: np.ndarray) -> np.ndarray:
  """A clustered dot's spot function over a cell (fu, fv in [-0.5, 0.5]): ink grows from 0."""
  if shape == "diamond":
    return np.abs(fu) + np.abs(fv)
  spot, across = fu * fu, fv * fv
  if shape == "ellipse":
    across *= 1.0 / ELLIPSE_ASPECT ** 2
  spot += across
  return spot


@functools.lru_cache(maxsize=None)
def _spot_cuts(shape: str, samples: int = 512) -> tuple[np.ndarray, np.ndarray]:
  """(spot value, share of the cell below it): the spot cut that prints a density exactly."""
  f = (np.arange(samples, dtype=np.float64) + 0.5) / samples - 0.5
  values = np.sort(_spot(shape, *np.meshgrid(f, f, indexing="ij")).ravel())
  share = np.linspace(0.0, 1.0, 1025)
  idx = np.minimum((share * values.size).astype(np.int64), values.size - 1)
  return values[idx], share


def _normal_quantile(p: float) -> float:
  if p <= 0.0:
    return -math.inf
  return statistics.NormalDist().inv_cdf(p)


def _wobble(h: int, w: int, pitch: float, rng: np.random.Generator) -> np.ndarray:
  """A smooth random shift (in lines) that makes ruled lines look drawn by hand."""
  step = 8.0 * pitch
  coarse = rng.standard_normal((int(h / step) + 2, int(w / step) + 2)) * 0.12
  return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
