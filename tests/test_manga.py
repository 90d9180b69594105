"""koala.manga: seeded manga renderings of colour art (paper, ink lines, screentone).

Fast (scikit-image samples and small synthetic art; no shared data). The share bounds come from
the real pages, measured by bench/manga_renderings.py.
"""
from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np
import pytest
from skimage import data

from koala import manga

# bench/manga_renderings.py on the 44 real pages of ../shared/data/manga at their own size,
# 2026-12-01: paper (gray >= 250) 0.112 - 0.973, quartiles 0.503 / 0.636, median 0.563;
# ink (gray <= 40) 0.009 - 0.374. Widened a little: skimage photos are not manga art.
REAL_PAPER = (0.10, 0.98)
REAL_INK = (0.005, 0.40)
REAL_PAPER_MIDDLE = (0.47, 0.67)       # the quartiles, widened by about 0.03

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry")


@functools.lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
  image = getattr(data, name)()
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  image = np.ascontiguousarray(image[..., :3])
  image.setflags(write=False)
  return image


def patch_art() -> np.ndarray:
  """448 x 448 (drawn at 896: every feature doubles): white paper, a mid-gray square at
  112..336 (224..672 on the page) and a black bar along the bottom."""
  art = np.full((448, 448, 3), 255, np.uint8)
  art[112:336, 112:336] = 128
  art[400:] = 0
  return art


INSIDE = (slice(260, 636), slice(260, 636))   # the gray square, away from its outline
PAPER = (slice(20, 180), slice(20, 876))      # white art, away from every edge


def test_same_seed_gives_the_same_bytes():
  first = manga.render_manga(photo("astronaut"), seed=123)
  assert first.dtype == np.uint8 and first.shape == (896, 896)
  assert manga.render_manga(photo("astronaut"), seed=123).tobytes() == first.tobytes()
  style = manga.draw_style(123)
  assert manga.render_manga(photo("astronaut"), style=style).tobytes() == first.tobytes()


def test_different_seeds_give_different_styles_and_pixels():
  styles = {manga.draw_style(seed) for seed in range(20)}
  assert len(styles) == 20
  assert {s.screen for s in styles} >= {"dots", "hatching"}
  assert {s.finish for s in styles} >= {"antialiased", "jpeg"}
  a, b = (manga.render_manga(photo("coffee"), seed=s) for s in (1, 2))
  assert a.shape == b.shape and np.mean(a != b) > 0.05


def test_rendering_seed_is_stable_and_spreads():
  # sha256("abc:3")[:8], big-endian: the pipeline's manifests depend on this never changing.
  assert manga.rendering_seed("abc", 3) == 1151464711917298570
  assert manga.rendering_seed("0" * 64, 0) == 7651230373725703915
  seeds = {manga.rendering_seed("abc", i) for i in range(100)}
  assert len(seeds) == 100 and all(0 <= s < 2 ** 64 for s in seeds)


def test_no_global_random_state_is_used_or_changed():
  np.random.seed(7)
  before = np.random.get_state()[1].copy()
  manga.render_manga(patch_art(), style=dataclasses.replace(manga.draw_style(5), screen="noise"))
  manga.render_manga(patch_art(), style=dataclasses.replace(manga.draw_style(5), screen="hatching"))
  np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_same_bytes_on_opencvs_reference_code_paths():
  """Another CPU runs other SIMD code; OpenCV's unoptimised paths stand in for it. From the
  same work-size art the page must not change (float blurs differ there in the last bit, which
  is why every cut sits half a level off the integer lightness levels)."""
  art = cv2.resize(photo("chelsea"), (896, 596), interpolation=cv2.INTER_CUBIC)
  seeds = (0, 1, 2, 3, 4, 5)
  fast = [manga.render_manga(art, seed=s) for s in seeds]
  optimised = cv2.useOptimized()
  try:
    cv2.setUseOptimized(False)
    slow = [manga.render_manga(art, seed=s) for s in seeds]
  finally:
    cv2.setUseOptimized(optimised)
  for a, b in zip(fast, slow):
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("shape, expected", [
    ((300, 451, 3), (596, 896)), ((640, 200, 3), (896, 280)), ((1411, 1411, 3), (896, 896)),
    ((12, 30, 3), (358, 896)), ((1, 1, 3), (896, 896))])
def test_long_side_is_work_side_and_aspect_is_kept(shape, expected):
  art = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
  page = manga.render_manga(art, seed=0)
  assert page.shape == expected and page.dtype == np.uint8


def test_shares_fall_within_the_real_pages_range():
  paper = []
  for name in PHOTOS:
    for index in range(3):
      page = manga.render_manga(photo(name), seed=manga.rendering_seed(name, index))
      share_paper, share_ink = np.mean(page >= 250), np.mean(page <= 40)
      assert REAL_PAPER[0] <= share_paper <= REAL_PAPER[1], (name, index, share_paper)
      assert REAL_INK[0] <= share_ink <= REAL_INK[1], (name, index, share_ink)
      paper.append(share_paper)
  assert REAL_PAPER_MIDDLE[0] <= np.median(paper) <= REAL_PAPER_MIDDLE[1], np.median(paper)


def finished(finish: str, **extra) -> np.ndarray:
  style = manga.MangaStyle(screen="dots", pitch=6.0, angle=45.0, tone_levels=(0.3, 0.6),
                           finish=finish, **extra)
  return manga.render_manga(photo("astronaut"), style=style)


def test_binary_and_clean_finishes_are_only_paper_and_ink():
  assert set(np.unique(finished("binary", blur=0.5)).tolist()) == {0, 255}
  assert set(np.unique(finished("clean")).tolist()) == {0, 255}


def test_jpeg_finish_differs_from_clean_and_antialiased():
  clean, smooth = finished("clean"), finished("antialiased")
  jpeg = finished("jpeg", jpeg_quality=60)
  assert np.mean(jpeg != clean) > 0.05
  assert np.mean(jpeg != smooth) > 0.05
  assert np.abs(jpeg.astype(int) - smooth.astype(int)).mean() < 20   # the same drawing


def test_antialiased_grays_lie_on_edges():
  clean, smooth = finished("clean"), finished("antialiased")
  mid = (smooth > 0) & (smooth < 255)
  assert mid.mean() > 0.05
  kernel = np.ones((3, 3), np.uint8)
  ink = cv2.dilate((clean == 0).astype(np.uint8), kernel) > 0
  paper = cv2.dilate((clean == 255).astype(np.uint8), kernel) > 0
  assert np.mean((ink & paper)[mid]) > 0.97    # within a pixel of both ink and paper


@pytest.mark.parametrize("screen", manga.SCREENS)
@pytest.mark.parametrize("density, pitch", [(0.1, 4.0), (0.25, 7.0), (0.4, 10.0)])
def test_a_mid_gray_patch_becomes_a_screen_of_its_density(screen, density, pitch):
  style = manga.MangaStyle(screen=screen, pitch=pitch, angle=30.0, tone_levels=(density, 0.7),
                           noise_seed=3)
  page = manga.render_manga(patch_art(), style=style)
  inside = page[INSIDE]
  assert set(np.unique(inside).tolist()) == {0, 255}
  assert abs(np.mean(inside == 0) - density) < 0.01


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_drawn_styles_screen_gray_keep_paper_white_and_ink_edges(seed):
  style = manga.draw_style(seed)
  page = manga.render_manga(patch_art(), style=style)
  inside = page[INSIDE].astype(np.float64)
  # a screen, not flat gray: its mean is the lightest sheet's density, and it has texture
  assert abs((255.0 - inside.mean()) / 255.0 - style.tone_levels[0]) < 0.04
  assert inside.std() > 25.0
  white = page[PAPER]
  assert white.min() >= (250 if style.finish == "jpeg" else 255)
  assert np.mean(page[820:, 20:876] <= 40) > 0.99                   # solid black art
  # the square's sharp outline is inked: a dark line runs down just inside its left edge
  assert np.mean(page[260:636, 222:232].min(axis=1) <= 64) > 0.95
  assert page[260:636, 224:230].mean() < inside.mean() - 45


def test_flat_art_is_blank_paper_without_lines():
  page = manga.render_manga(np.full((100, 100, 3), 255, np.uint8), seed=3)
  assert page.min() >= 250


@pytest.mark.parametrize("rgb, message", [
    (np.zeros((32, 32, 3), np.float32), "uint8"),
    (np.zeros((32, 32), np.uint8), "shape"),
    (np.zeros((32, 32, 4), np.uint8), "shape"),
    (np.zeros((0, 32, 3), np.uint8), "shape"),
    ([[[0, 0, 0]]], "uint8"),
])
def test_bad_art_is_refused(rgb, message):
  with pytest.raises(ValueError, match=message):
    manga.render_manga(rgb, seed=0)


def test_exactly_one_of_seed_and_style():
  art = patch_art()
  with pytest.raises(ValueError, match="exactly one"):
    manga.render_manga(art)
  with pytest.raises(ValueError, match="exactly one"):
    manga.render_manga(art, seed=1, style=manga.MangaStyle())
  for seed in (-1, True, 1.5, "7"):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
      manga.render_manga(art, seed=seed)
  with pytest.raises(ValueError, match="style must be a MangaStyle"):
    manga.render_manga(art, style={"screen": "dots"})


@pytest.mark.parametrize("change, message", [
    (dict(pitch=-1.0), "pitch must be within"),
    (dict(pitch="6"), "pitch must be a number"),
    (dict(angle=180.0), r"angle must be within \[0, 180\)"),
    (dict(angle=-15.0), "angle must be within"),
    (dict(screen="zigzag"), "screen must be one of"),
    (dict(dot_shape="star"), "dot_shape must be one of"),
    (dict(finish="glossy"), "finish must be one of"),
    (dict(tone_levels=(0.5, 0.2)), "tone_levels must be 1-4 increasing"),
    (dict(tone_levels=(0.0, 0.3)), "tone_levels must be 1-4 increasing"),
    (dict(tone_levels=()), "tone_levels must be 1-4 increasing"),
    (dict(paper_share=1.0), "paper_share must be within"),
    (dict(line_sigma=0.0), "line_sigma must be within"),
    (dict(jpeg_quality=0), "jpeg_quality must be within"),
    (dict(jpeg_quality=70.5), "jpeg_quality must be an integer"),
    (dict(blur=0.5), "clean finish takes no blur"),
    (dict(noise_seed=-3), "noise_seed must be non-negative"),
])
def test_out_of_range_styles_are_refused_with_one_sentence(change, message):
  with pytest.raises(ValueError, match=message) as error:
    manga.MangaStyle(**change)
  text = str(error.value)
  assert text.endswith(".") and text.count(". ") == 0


def test_rendering_seed_refuses_bad_arguments():
  with pytest.raises(ValueError, match="content_hash"):
    manga.rendering_seed("", 0)
  with pytest.raises(ValueError, match="index"):
    manga.rendering_seed("abc", -1)
  with pytest.raises(ValueError, match="seed must be"):
    manga.draw_style(-5)


def test_tone_levels_become_a_tuple_and_styles_are_hashable():
  style = manga.MangaStyle(tone_levels=[0.1, 0.3])
  assert style.tone_levels == (0.1, 0.3)
  assert hash(style) == hash(manga.MangaStyle(tone_levels=(0.1, 0.3)))
