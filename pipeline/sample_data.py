"""python -m pipeline.sample_data --output_dir=DIR [--count=N] [--seed=S]

Makes a small, offline sample set for the demo and the tests: procedurally drawn cel-shaded
scenes (black line art, flat colours, screentone, hatching) plus the colour photographs that
scikit-image ships. Nothing is downloaded and nothing comes from ../shared.

The scenes follow rules a colorizer can learn from the page: a sky with screentone clouds on
top (blue, at dusk or violet: only a hint can tell which on a manga page), green hatched grass below, a yellow sun, houses with red roofs. `gray_pages/` holds
manga pages (`koala.manga.render_manga`: white paper, ink lines, screentone) of scenes the
colour set does not contain, as pages to colorize, and `page_truth/` their colour originals at
the page's size. Why manga renderings and not the scenes' gray: users send black-and-white
manga pages, mostly white paper (SPEC, "Manga pages"), and the demo's model is trained on the
same renderings (`pipeline.run --render=manga`), so the pages look like what it learned from.
"""
from __future__ import annotations

import argparse
import os

import cv2
import numpy as np

from koala import manga

SKY = (110, 170, 235)
GRASS = (80, 165, 70)
SUN = (250, 210, 60)
WALL = (235, 225, 200)
ROOF = (200, 50, 40)
# The sample set's skies: mostly blue, some at dusk or violet. Rendered as manga, a sky is white
# paper whatever its colour, so the page cannot tell them apart and only a hint can: what makes
# the guided model follow a dot on paper rather than paint every paper sky blue.
SKIES = ((110, 170, 235), (110, 170, 235), (245, 165, 105), (190, 150, 225))
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
                  "colorwheel")


def _screentone(mask: np.ndarray, rng: np.random.Generator, period: int = 6) -> np.ndarray:
  """A dot screen inside `mask`: the texture manga uses for flat tints."""
  h, w = mask.shape
  yy, xx = np.mgrid[0:h, 0:w]
  r = rng.uniform(1.0, period / 2.5)
  dots = ((yy % period - period / 2) ** 2 + (xx % period - period / 2) ** 2) < r * r
  return mask & dots


def draw_scene(rng: np.random.Generator, height: int, width: int,
               sky: tuple[int, int, int] = SKY) -> np.ndarray:
  """One cel-shaded scene, (H, W, 3) uint8 RGB."""
  img = np.zeros((height, width, 3), np.uint8)
  horizon = int(height * rng.uniform(0.45, 0.7))
  img[:horizon] = sky
  img[horizon:] = GRASS
  # Screentone clouds in the sky, hatching in the grass.
  clouds = np.zeros((height, width), np.uint8)
  for _ in range(rng.integers(1, 4)):
    c = (int(rng.uniform(0, width)), int(rng.uniform(0, horizon * 0.6)))
    cv2.ellipse(clouds, c, (int(width * rng.uniform(0.08, 0.2)), int(height * 0.05)), 0, 0, 360, 1, -1)
  img[_screentone(clouds.astype(bool), rng)] = (240, 245, 255)
  for x in range(-height, width, int(rng.integers(7, 12))):
    cv2.line(img, (x, height), (x + (height - horizon), horizon), (40, 110, 40), 1)
  cv2.line(img, (0, horizon), (width, horizon), (0, 0, 0), 2)
  # The sun.
  sun_c = (int(rng.uniform(0.1, 0.9) * width), int(rng.uniform(0.1, 0.3) * horizon))
  sun_r = int(min(height, width) * rng.uniform(0.05, 0.1))
  cv2.circle(img, sun_c, sun_r, SUN, -1, cv2.LINE_AA)
  cv2.circle(img, sun_c, sun_r, (0, 0, 0), 2, cv2.LINE_AA)
  # Houses: wall, roof, window, all outlined in black.
  for _ in range(rng.integers(1, 4)):
    w = int(width * rng.uniform(0.12, 0.25))
    h = int(height * rng.uniform(0.12, 0.22))
    x = int(rng.uniform(0, width - w))
    y = horizon + int(rng.uniform(0.0, 0.25) * (height - horizon))
    cv2.rectangle(img, (x, y - h), (x + w, y), WALL, -1)
    cv2.rectangle(img, (x, y - h), (x + w, y), (0, 0, 0), 2)
    roof = np.array([(x - w // 8, y - h), (x + w + w // 8, y - h), (x + w // 2, y - h - h // 2)])
    cv2.fillPoly(img, [roof], ROOF, cv2.LINE_AA)
    cv2.polylines(img, [roof], True, (0, 0, 0), 2, cv2.LINE_AA)
    win = (x + w // 3, y - h * 2 // 3, w // 3, h // 3)
    cv2.rectangle(img, win[:2], (win[0] + win[2], win[1] + win[3]), (60, 60, 70), -1)
  return img


def page_seed(seed: int, index: int) -> int:
  """The manga style of the index-th page of a sample set: fixed by (seed, index)."""
  return manga.rendering_seed(f"sample-page-{seed}", index)


def to_page(rgb: np.ndarray, seed: int) -> np.ndarray:
  """The scene as a black-and-white manga page (koala.manga: paper, ink, screentone)."""
  return manga.render_manga(rgb, seed=seed)


def skimage_photos() -> dict[str, np.ndarray]:
  """The colour photos bundled inside scikit-image (no download); missing ones are skipped."""
  from skimage import data
  photos = {}
  for name in SKIMAGE_PHOTOS:
    try:
      img = getattr(data, name)()
    except Exception:   # a photo that scikit-image would have to download
      continue
    if img.ndim == 3 and img.shape[2] >= 3:
      photos[name] = np.ascontiguousarray(img[..., :3])
  return photos


def _write(path: str, rgb: np.ndarray) -> None:
  if rgb.ndim == 3:
    rgb = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
  if not cv2.imwrite(path, rgb):
    raise OSError(f"could not write {path}")


def generate(output_dir: str, count: int = 48, pages: int = 4, seed: int = 0,
             photos: bool = True, size: tuple[int, int] = (256, 320)) -> dict[str, list[str]]:
  """Writes `colour/` (scenes and photos, for the pipeline), `gray_pages/` (manga pages to
  colorize) and `page_truth/` (their colour originals, the same size)."""
  rng = np.random.default_rng(seed)
  skies = np.random.default_rng([seed, 1])     # apart, so the scenes' other draws stay as they were
  sky = lambda: SKIES[int(skies.integers(len(SKIES)))]
  colour_dir = os.path.join(output_dir, "colour")
  pages_dir = os.path.join(output_dir, "gray_pages")
  os.makedirs(colour_dir, exist_ok=True)
  os.makedirs(pages_dir, exist_ok=True)
  written = {"colour": [], "gray_pages": []}
  for i in range(count):
    h, w = size if i % 2 == 0 else size[::-1]
    path = os.path.join(colour_dir, f"scene_{i:04d}.{'png' if i % 3 else 'jpg'}")
    _write(path, draw_scene(rng, h, w, sky()))
    written["colour"].append(path)
  if photos:
    for name, img in skimage_photos().items():
      path = os.path.join(colour_dir, f"photo_{name}.png")
      _write(path, img)
      written["colour"].append(path)
  truth_dir = os.path.join(output_dir, "page_truth")
  written["page_truth"] = []
  for i in range(pages):
    # Drawn at the manga renderer's work size, so that the page and its truth align pixel for
    # pixel: portrait pages (A-series aspect) and double-page-like landscape ones.
    h, w = manga.work_size(*((800, 566) if i % 2 == 0 else (size[0] * 2, size[1] * 2)))
    path = os.path.join(pages_dir, f"page_{i:02d}.png")
    scene = draw_scene(rng, h, w, sky())
    _write(path, to_page(scene, page_seed(seed, i)))
    written["gray_pages"].append(path)
    # The gray page's colour original: not for training, for the demo's hints (a user's dots
    # stand in for knowing the true colours) and for a person to compare with.
    os.makedirs(truth_dir, exist_ok=True)
    truth = os.path.join(truth_dir, f"page_{i:02d}.png")
    _write(truth, scene)
    written["page_truth"].append(truth)
  return written


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--output_dir", required=True)
  parser.add_argument("--count", type=int, default=48, help="Number of colour scenes.")
  parser.add_argument("--pages", type=int, default=4, help="Number of gray pages to colorize.")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no_photos", action="store_true")
  args = parser.parse_args(argv)
  written = generate(args.output_dir, args.count, args.pages, args.seed, not args.no_photos)
  print(f"wrote {len(written['colour'])} colour images and {len(written['gray_pages'])} gray "
        f"pages under {args.output_dir}")


if __name__ == "__main__":
  main()
