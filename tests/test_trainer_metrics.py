"""trainer.metrics against values worked out by hand from docs/SPEC.md's definitions."""
import math

import keras
import numpy as np
import pytest

from trainer import metrics


@pytest.fixture
def rng():
  return np.random.default_rng(0)


def test_identical_images_score_perfectly(rng):
  rgb = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
  ab = rng.uniform(-100, 100, (48, 40, 2)).astype(np.float32)
  assert metrics.psnr(rgb, rgb) == math.inf
  assert metrics.ssim(rgb, rgb) == pytest.approx(1.0)
  assert metrics.mse(ab / 128, ab / 128) == 0.0
  assert metrics.keras_accuracy(ab, ab) == 1.0
  assert metrics.auc(ab, ab) == 1.0   # zero error: A(t) = 1 for every t, t = 0 included


def test_psnr_of_a_constant_offset():
  a = np.full((8, 8, 3), 100, np.uint8)
  assert metrics.psnr(a, a + 5) == pytest.approx(20 * math.log10(255 / 5))   # 34.151 dB


def test_ssim_constants_on_flat_images():
  """Flat images: only SSIM's luminance term is left, (2 mx my + C1) / (mx^2 + my^2 + C1),
  with C1 = (0.01 * 255)^2, which pins data_range = 255 and K1 = 0.01."""
  c1 = (0.01 * 255) ** 2
  expected = (2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1)   # 0.995476
  got = metrics.ssim(np.full((32, 32, 3), 100, np.uint8), np.full((32, 32, 3), 110, np.uint8))
  assert got == pytest.approx(expected, rel=1e-6)


def test_ssim_window_is_gaussian_11x11():
  """A one-pixel change moves SSIM only inside the 11 x 11 window around it: SSIM's local mean
  at a pixel 6 away (outside the window) is untouched, so the mean SSIM equals the one computed
  on the changed pixel's neighbourhood alone."""
  base = np.full((64, 64, 3), 120, np.uint8)
  bumped = base.copy()
  bumped[32, 32] = 200
  from skimage.metrics import structural_similarity
  _, full = structural_similarity(base, bumped, data_range=255, channel_axis=-1,
                                  gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                  full=True)
  affected = np.argwhere(full[..., 0] < 1 - 1e-12)
  assert affected.min(axis=0).tolist() == [27, 27] and affected.max(axis=0).tolist() == [37, 37]


def test_gray_prediction():
  """ab = 0 everywhere: MSE is the target's mean square; argmax of (0, 0) is a (index 0), so the
  original project's 'accuracy' is the share of target pixels with a >= b; the image stays gray (CF
  0)."""
  target = np.zeros((4, 4, 2), np.float32)
  target[:, :2] = (64.0, -32.0)     # a > b: argmax 0, matches the gray prediction
  target[:, 2:] = (-64.0, 32.0)     # a < b: argmax 1, does not
  gray = np.zeros_like(target)
  assert metrics.mse(target / 128, gray) == pytest.approx(((0.5 ** 2) + (0.25 ** 2)) / 2)
  assert metrics.keras_accuracy(target, gray) == 0.5
  assert metrics.colorfulness(np.full((8, 8, 3), 77, np.uint8)) == 0.0


def test_keras_accuracy_is_keras_default_accuracy_for_this_output(rng):
  """The seed compiled with metrics=['accuracy'] and an MSE loss on a 2-channel output, which
  Keras resolves to categorical accuracy; our NumPy version and the trainer's metric agree."""
  y_true = rng.uniform(-1, 1, (2, 16, 16, 2)).astype(np.float32)
  y_pred = rng.uniform(-1, 1, (2, 16, 16, 2)).astype(np.float32)
  m = keras.metrics.CategoricalAccuracy()
  m.update_state(y_true, y_pred)
  assert metrics.keras_accuracy(y_true, y_pred) == pytest.approx(float(m.result()), abs=1e-6)


def test_auc_known_values():
  truth = np.zeros((10, 10, 2), np.float32)
  # d = 10 everywhere: A(t) = 0 for t < 10 and 1 from t = 10 on, so 141 of the 151 thresholds.
  assert metrics.auc(truth, truth + np.array([6.0, 8.0])) == pytest.approx(141 / 151)
  # d = 10.5: first counted at t = 11.
  assert metrics.auc(truth, truth + np.array([10.5, 0.0])) == pytest.approx(140 / 151)
  # d > 150 everywhere: never within any threshold.
  assert metrics.auc(truth, truth + np.array([200.0, 0.0])) == 0.0
  # half the pixels exact, half at d = 150: 151 + 1 counts of half the pixels.
  half = truth.copy()
  half[5:] = (0.0, 150.0)
  assert metrics.auc(truth, half) == pytest.approx((151 * 0.5 + 1 * 0.5) / 151)


def test_colorfulness_known_values():
  red = np.zeros((10, 10, 3), np.uint8)
  red[..., 0] = 255
  # rg = 255, yb = 127.5, no spread: 0.3 * sqrt(255^2 + 127.5^2).
  assert metrics.colorfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5))
  half = red.copy()
  half[5:] = 0
  # rg: 255 or 0 (mean 127.5, std 127.5), yb: 127.5 or 0 (mean and std 63.75).
  assert metrics.colorfulness(half) == pytest.approx(1.3 * math.hypot(127.5, 63.75))


def test_accumulator_averages_images_and_pixels():
  acc = metrics.Accumulator()
  truth = np.zeros((16, 16, 2), np.float32)
  rgb = np.full((16, 16, 3), 90, np.uint8)
  acc.add_square(truth / 128, truth / 128)
  acc.add_image(rgb, rgb, truth, truth)
  acc.add_square(truth / 128, (truth + [0.0, 128.0]) / 128)
  acc.add_image(rgb, rgb + 5, truth, truth + [6.0, 8.0])
  r = acc.result()
  assert r["mse"] == pytest.approx(0.25)                 # half the values off by 1 in one image
  assert r["keras_accuracy"] == pytest.approx(0.5)        # argmax (0, 1) != argmax (0, 0) = 0
  assert r["auc"] == pytest.approx((1.0 + 141 / 151) / 2)
  assert r["psnr"] == math.inf and r["images"] == 2
  assert r["ssim"] < 1.0


def test_ssim_skips_slivers_narrower_than_the_window():
  sliver = np.full((224, 6, 3), 50, np.uint8)
  assert math.isnan(metrics.ssim(sliver, sliver))
  acc = metrics.Accumulator()
  acc.add_image(sliver, sliver, np.zeros((224, 6, 2)), np.zeros((224, 6, 2)))
  assert acc.result()["ssim"] is None
