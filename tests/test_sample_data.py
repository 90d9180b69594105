"""The generated sample set that the demo and the README's main command run on."""
import numpy as np

from koala import colour, gray, images
from pipeline import sample_data


def test_generate_writes_colour_scenes_photos_and_gray_pages(tmp_path):
  written = sample_data.generate(str(tmp_path), count=4, pages=2, seed=1)
  assert len(written["colour"]) >= 4 + 3          # scenes + scikit-image's bundled photos
  assert len(written["gray_pages"]) == 2
  for path in written["colour"]:
    with open(path, "rb") as f:
      rgb = images.decode_image(f.read())
    lab = colour.rgb_to_lab(rgb)
    assert gray.image_chroma(lab[..., 1:], *rgb.shape[:2]) > 10, path   # real colour
  for path in written["gray_pages"]:
    with open(path, "rb") as f:
      rgb = images.decode_image(f.read())
    assert rgb.shape[0] > rgb.shape[1] or rgb.shape[0] >= 500     # page-sized, mostly portrait
    assert np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2])


def test_scenes_are_deterministic_and_follow_learnable_rules():
  a = sample_data.draw_scene(np.random.default_rng(5), 120, 160)
  b = sample_data.draw_scene(np.random.default_rng(5), 120, 160)
  np.testing.assert_array_equal(a, b)
  lab = colour.rgb_to_lab(a)
  assert lab[:10, :, 2].mean() < -10      # the sky on top is blue (negative b)
  assert lab[-10:, :, 1].mean() < -10     # the grass below is green (negative a)


def test_gray_page_keeps_the_scene_lightness():
  rgb = sample_data.draw_scene(np.random.default_rng(2), 100, 100)
  gray = sample_data.to_gray_page(rgb)
  assert np.abs(colour.gray_to_l(gray) - colour.rgb_to_l(rgb)).max() < 0.5
