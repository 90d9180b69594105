"""trainer.levin: Levin et al. 2004's propagation reproduces a two-region image from one hint per
region, keeps hints exactly, and gives gray without hints."""
import numpy as np

from trainer import levin


def two_regions():
  l = np.full((40, 48), 75.0, np.float32)
  l[:, 24:] = 45.0                    # two flat regions of different lightness
  ab = np.zeros((40, 48, 2), np.float32)
  ab[:, :24] = (40.0, -30.0)
  ab[:, 24:] = (-35.0, 50.0)
  return l, ab


def test_one_hint_per_region_reproduces_the_two_region_image():
  l, ab = two_regions()
  mask = np.zeros((40, 48), bool)
  mask[20, 8] = mask[10, 40] = True
  out = levin.propagate(l, ab, mask)
  assert out.shape == (40, 48, 2) and out.dtype == np.float32
  np.testing.assert_allclose(out[mask], ab[mask], atol=1e-6)
  # Every pixel is nearer its own region's colour than the other's, and within a few LAB units
  # of it (a point hint leaks a little across the edge: the colours are 110 units apart).
  colours = np.array([(40.0, -30.0), (-35.0, 50.0)])
  nearest = np.argmin(np.linalg.norm(out[..., None, :] - colours, axis=-1), axis=-1)
  np.testing.assert_array_equal(nearest, np.where(np.arange(48) < 24, 0, 1)[None].repeat(40, 0))
  assert np.linalg.norm(out - ab, axis=-1).max() < 5.0


def test_no_hints_is_gray():
  l, ab = two_regions()
  assert not levin.propagate(l, ab, np.zeros((40, 48), bool)).any()
