"""koala.guidance: the palette (NumPy and TF agree), hint planes, and hint sampling (seeded,
reproducible, and every hint carries the true colour of the place it marks)."""
import numpy as np
import tensorflow as tf

from koala import guidance
from tests import trainer_records


def _image(seed=0):
  return trainer_records.make_image(np.random.default_rng(seed))


def test_palette_numpy_and_tensorflow_agree_and_sum_to_one_plus_flag():
  l, ab = _image()
  p_np = guidance.palette_np(l, ab)
  p_tf = tf.function(guidance.palette_tf)(tf.constant(l[..., 0]), tf.constant(ab)).numpy()
  assert p_np.shape == p_tf.shape == (guidance.PALETTE_SIZE,)
  np.testing.assert_allclose(p_np, p_tf, atol=1e-6)
  assert p_np[-1] == 1.0 and abs(p_np[:-1].sum() - 1.0) < 1e-5
  # The cells holding mass are exactly those of the image's colours.
  centres = guidance.palette_centres()
  used = set(np.flatnonzero(p_np[:-1]))
  expected = {int(np.argmin(np.abs(centres - np.asarray(c)).sum(1)))
              for c in trainer_records.PALETTE.values() if (ab == c).all(-1).any()}
  assert used == expected
  assert not guidance.NO_PALETTE.any() and guidance.NO_PALETTE.shape == (guidance.PALETTE_SIZE,)


def test_palette_leaves_out_ink_and_paper_unless_that_is_all():
  l = np.full((8, 8), 100.0, np.float32)
  l[:4] = 50.0
  ab = np.zeros((8, 8, 2), np.float32)
  ab[:4] = (60.0, -60.0)
  p = guidance.palette_np(l, ab)
  assert p[:-1].max() == 1.0 and p[:-1].argmax() == np.argmin(
      np.abs(guidance.palette_centres() - (60, -60)).sum(1))
  all_paper = guidance.palette_np(np.full((8, 8), 100.0), np.zeros((8, 8, 2)))
  np.testing.assert_allclose(all_paper, guidance.palette_tf(np.full((8, 8), 100.0),
                                                            np.zeros((8, 8, 2))).numpy())
  assert all_paper[guidance.PALETTE_BINS // 2] == 1.0   # the gray cell is the middle one


def test_hint_planes_layout_and_round_trip():
  ab = np.random.default_rng(0).uniform(-100, 100, (16, 16, 2)).astype(np.float32)
  mask = np.zeros((16, 16), bool)
  mask[3, 4] = mask[10, 12] = True
  planes = guidance.encode_hints_np(ab, mask)
  assert planes.shape == (16, 16, 3) and planes.dtype == np.float32
  np.testing.assert_allclose(planes[3, 4], [ab[3, 4, 0] / 128, ab[3, 4, 1] / 128, 1.0])
  assert not planes[~mask].any()
  back_ab, back_mask = guidance.decode_hints_np(planes)
  assert (back_mask == mask).all()
  np.testing.assert_allclose(back_ab[mask], ab[mask], rtol=1e-6)
  assert not guidance.no_hints(16).any()


def test_hint_sampling_is_reproducible_and_hints_carry_the_true_colour():
  l, ab = _image(3)
  draw = lambda n, seed, patch=guidance.EVAL_PATCH: guidance.sample_hints_tf(
      l, ab, n, seed, 100, patch).numpy()
  a, b = draw(10, [4, 2]), draw(10, [4, 2])
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, draw(10, [5, 2]))
  hint_ab, mask = guidance.decode_hints_np(a)
  assert mask.any()
  # The synthetic image is flat regions: a hint's colour is its region's, exactly.
  np.testing.assert_allclose(hint_ab[mask], ab[mask], atol=1e-4)
  # More hints from the same seed add to the fewer: the first n of the same draws.
  _, mask20 = guidance.decode_hints_np(draw(20, [4, 2]))
  assert (mask20 >= mask).all() and mask20.sum() > mask.sum()
  assert not draw(0, [4, 2]).any()
  # Training patches (1..9 wide) carry the true colour too.
  hint_ab, mask = guidance.decode_hints_np(draw(30, [1, 1], patch=None))
  np.testing.assert_allclose(hint_ab[mask], ab[mask], atol=1e-4)


def test_hints_stay_off_lines_and_out_of_the_other_side():
  # Two flat halves split by a dark line: every hint is on a flat side, with that side's colour.
  l = np.full((32, 32, 1), 80.0, np.float32)
  l[:, 16:] = 60.0
  l[:, 15:17] = 5.0
  ab = np.zeros((32, 32, 2), np.float32)
  ab[:, :15] = (50.0, 20.0)
  ab[:, 17:] = (-40.0, 30.0)
  hint_ab, mask = guidance.decode_hints_np(
      guidance.sample_hints_tf(l, ab, 50, [7, 7], 50, patch=9).numpy())
  assert mask.any()
  np.testing.assert_allclose(hint_ab[mask], ab[mask], atol=1e-4)
  assert mask[:, 15:17].mean() < mask.mean()   # lines are unlikely places


def test_training_hint_count_has_hint_free_examples_and_a_geometric_tail():
  counts = np.array([int(guidance.training_hint_count([i, 9])) for i in range(400)])
  assert 0.1 < np.mean(counts == 0) < 0.4
  assert counts.max() <= guidance.MAX_TRAIN_HINTS and np.mean(counts[counts > 0]) > 3


def test_resize_hints_keeps_colour_and_marks_any_hinted_cell():
  ab = np.zeros((8, 8, 2), np.float32)
  ab[1, 1] = (64.0, -32.0)
  mask = np.zeros((8, 8), bool)
  mask[1, 1] = True
  small = guidance.resize_hints_tf(guidance.encode_hints_np(ab, mask), 4).numpy()
  hint_ab, m = guidance.decode_hints_np(small)
  assert m.sum() == 1 and m[0, 0]
  np.testing.assert_allclose(hint_ab[0, 0], (64.0, -32.0), atol=1e-4)
