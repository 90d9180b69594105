"""The generated sample set that the demo and the README's main command run on."""
import numpy as np

from koala import colour, gray, images, manga
from pipeline import sample_data


def test_generate_writes_colour_scenes_photos_and_manga_pages(tmp_path):
  written = sample_data.generate(str(tmp_path), count=4, pages=2, seed=1)
  assert len(written["colour"]) >= 4 + 3          # scenes + scikit-image's bundled photos
  assert len(written["gray_pages"]) == 2
  for path in written["colour"]:
    with open(path, "rb") as f:
      rgb = images.decode_image(f.read())
    lab = colour.rgb_to_lab(rgb)
    assert gray.image_chroma(lab[..., 1:], *rgb.shape[:2]) > 10, path   # real colour
  assert len(written["page_truth"]) == 2
  for path, truth_path in zip(written["gray_pages"], written["page_truth"]):
    with open(path, "rb") as f:
      rgb = images.decode_image(f.read())
    assert max(rgb.shape[:2]) == manga.WORK_SIDE                  # page-sized
    assert np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2])
    with open(truth_path, "rb") as f:
      truth = images.decode_image(f.read())
    assert truth.shape == rgb.shape                               # aligned pixel for pixel
    assert gray.image_chroma(colour.rgb_to_lab(truth)[..., 1:], *truth.shape[:2]) > 10


def test_the_pages_are_manga_paper_ink_and_screentone(tmp_path):
  """Like a manga page (SPEC: 59 % of real pages' pixels are paper, gray >= 250), not a gray
  photograph: mostly white paper, some black ink, screens for the tones in between."""
  written = sample_data.generate(str(tmp_path), count=0, pages=4, seed=0, photos=False)
  for path in written["gray_pages"]:
    with open(path, "rb") as f:
      page = images.decode_image(f.read())[..., 0]
    paper, ink = (page >= 250).mean(), (page <= 40).mean()
    assert 0.35 <= paper <= 0.95, (path, paper)
    assert ink >= 0.01, (path, ink)


def test_pages_are_deterministic():
  scene = sample_data.draw_scene(np.random.default_rng(3), 200, 150)
  seed = sample_data.page_seed(0, 1)
  np.testing.assert_array_equal(sample_data.to_page(scene, seed), sample_data.to_page(scene, seed))
  assert np.array_equal(sample_data.to_page(scene, seed), manga.render_manga(scene, seed=seed))


def test_scenes_are_deterministic_and_follow_learnable_rules():
  a = sample_data.draw_scene(np.random.default_rng(5), 120, 160)
  b = sample_data.draw_scene(np.random.default_rng(5), 120, 160)
  np.testing.assert_array_equal(a, b)
  lab = colour.rgb_to_lab(a)
  assert lab[:10, :, 2].mean() < -10      # the sky on top is blue (negative b)
  assert lab[-10:, :, 1].mean() < -10     # the grass below is green (negative a)
