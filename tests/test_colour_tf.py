"""koala.colour_tf (the SavedModel's colour maths) against koala.colour and scikit-image."""
import numpy as np
import pytest
import tensorflow as tf
from skimage import color as skcolor
from skimage import data

from koala import colour, colour_tf


@pytest.fixture(scope="module", params=["astronaut", "coffee", "chelsea"])
def photo(request):
  return getattr(data, request.param)()[..., :3]


def test_rgb_to_lab_matches_numpy_and_skimage(photo):
  ours = colour_tf.rgb_to_lab(tf.constant(photo)).numpy()
  assert np.abs(ours - colour.rgb_to_lab(photo)).max() < 1.0
  assert np.abs(ours - skcolor.rgb2lab(photo)).max() < 1.0


def test_lab_to_rgb_matches_numpy_within_one_lab_unit(photo):
  lab = colour.rgb_to_lab(photo)
  lab[..., 1:] *= 1.6                         # push some pixels out of gamut: clamp and clip paths
  ours = colour_tf.lab_to_rgb(tf.constant(lab)).numpy()
  ref = colour.lab_to_rgb(lab)
  assert np.abs(skcolor.rgb2lab(ours) - skcolor.rgb2lab(ref)).max() < 1.0
  assert np.abs(colour.to_uint8(ours).astype(int) - colour.to_uint8(ref)).max() <= 1


def test_l_paths_agree(photo):
  l = colour.rgb_to_l(photo)
  np.testing.assert_allclose(colour_tf.rgb_to_l(tf.constant(photo)).numpy(), l, atol=0.05)
  gray = colour.l_to_neutral_gray(l)
  np.testing.assert_allclose(colour_tf.l_to_neutral_gray(tf.constant(l)).numpy(), gray, atol=1e-4)
  levels = np.arange(256, dtype=np.uint8)
  np.testing.assert_allclose(colour_tf.gray_to_l(tf.constant(levels)).numpy(),
                             colour.gray_to_l(levels), atol=1e-3)


def test_extreme_ab_is_clamped_like_numpy():
  lab = np.array([[50.0, 400.0, -400.0], [100.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
  np.testing.assert_allclose(colour_tf.lab_to_rgb(tf.constant(lab)).numpy(),
                             colour.lab_to_rgb(lab), atol=1e-4)
  assert np.allclose(colour_tf.clamp_ab(tf.constant([-300.0, 300.0])).numpy(),
                     [-colour.AB_LIMIT, colour.AB_LIMIT])
