"""Colorization metrics, in NumPy, exactly as docs/SPEC.md defines them.

  * mse: the original project's loss, mean squared error on ab / 128 (both channels, every pixel).
  * keras_accuracy: the original project's "accuracy", which was Keras's default accuracy on
    its 2-channel regression output, i.e. categorical accuracy: the share of pixels where argmax
    over (a, b) of the prediction equals that of the target (ties go to a, as np.argmax and
    tf.argmax both do). It says little about colour; it is reported only to compare with the
    original project's 0.633-0.659.
  * psnr / ssim: on the sRGB uint8 result against the colour original, MAX = 255; SSIM with an
    11x11 Gaussian window, sigma 1.5 (Wang et al. 2004; scikit-image's gaussian_weights mode).
  * auc: Zhang et al. 2016: d = per-pixel Euclidean ab error in LAB units, A(t) = share of pixels
    with d <= t, AuC = mean of A(t) over t = 0, 1, ..., 150.
  * colorfulness: Hasler & Suesstrunk 2003, on sRGB in 0..255: rg = R - G, yb = (R + G) / 2 - B,
    CF = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2).
  * at reading distance (manga pages, trainer.manga_eval): a printed page's screentone is
    dissolved by the reader's eye, so `psnr_quarter` and `ab_error_quarter` compare both images
    after an area average to 1/4 scale (cv2.INTER_AREA), where a screen's dots and the paper
    between them become the tone they stand for; `paper_colour_counts` says how much of a
    page's white paper (gray >= 250) the colouring reached (chroma >= 5 LAB units).

`Accumulator` streams batches and averages the per-image metrics over images and the per-pixel
ones over pixels, so an evaluation never holds a whole split in memory.
"""
from __future__ import annotations

import numpy as np

AUC_THRESHOLDS = np.arange(0, 151)   # t = 0..150 LAB units
SSIM_SIGMA = 1.5                     # with scikit-image's truncate=3.5: an 11x11 window
PIXEL_MAX = 255.0


def mse(ab_true_norm: np.ndarray, ab_pred_norm: np.ndarray) -> float:
  """The original project's loss: MSE on ab / 128."""
  d = np.asarray(ab_pred_norm, np.float64) - np.asarray(ab_true_norm, np.float64)
  return float(np.mean(d * d))


def argmax_matches(ab_true: np.ndarray, ab_pred: np.ndarray) -> np.ndarray:
  """Per pixel: does argmax over the last axis (a, b) agree? (Keras's categorical accuracy.)"""
  return np.argmax(ab_true, axis=-1) == np.argmax(ab_pred, axis=-1)


def keras_accuracy(ab_true: np.ndarray, ab_pred: np.ndarray) -> float:
  return float(np.mean(argmax_matches(ab_true, ab_pred)))


def psnr(rgb_true: np.ndarray, rgb_pred: np.ndarray) -> float:
  """One image pair, uint8 sRGB; inf when they are identical."""
  d = np.asarray(rgb_pred, np.float64) - np.asarray(rgb_true, np.float64)
  err = np.mean(d * d)
  return float("inf") if err == 0 else float(10.0 * np.log10(PIXEL_MAX ** 2 / err))


SSIM_WINDOW = 11


def ssim(rgb_true: np.ndarray, rgb_pred: np.ndarray) -> float:
  """One image pair, uint8 sRGB (H, W, 3): mean SSIM over pixels and channels; NaN for an image
  narrower than the window (a sliver of a letterboxed square), which averages leave out."""
  from skimage.metrics import structural_similarity
  if min(np.shape(rgb_true)[:2]) < SSIM_WINDOW:
    return float("nan")
  return float(structural_similarity(
      np.asarray(rgb_true), np.asarray(rgb_pred), data_range=PIXEL_MAX, channel_axis=-1,
      gaussian_weights=True, sigma=SSIM_SIGMA, use_sample_covariance=False))


def ab_error_counts(ab_true: np.ndarray, ab_pred: np.ndarray) -> np.ndarray:
  """Per threshold t in 0..150: how many pixels have ab error d <= t (LAB units)."""
  d = np.sqrt(np.sum((np.asarray(ab_pred, np.float64) - np.asarray(ab_true, np.float64)) ** 2,
                     axis=-1)).ravel()
  # d <= t for an integer t exactly when ceil(d) <= t, so a histogram of ceil(d) does it at once.
  bins = np.minimum(np.ceil(d), AUC_THRESHOLDS[-1] + 1).astype(np.int64)
  return np.cumsum(np.bincount(bins, minlength=AUC_THRESHOLDS[-1] + 2))[:len(AUC_THRESHOLDS)]


def auc(ab_true: np.ndarray, ab_pred: np.ndarray) -> float:
  """Zhang et al.'s AuC over all pixels given, in [0, 1]; 1.0 for a perfect prediction."""
  n = np.asarray(ab_true).size // 2
  return float(np.mean(ab_error_counts(ab_true, ab_pred) / n))


def colorfulness(rgb: np.ndarray) -> float:
  """One image, sRGB (H, W, 3) uint8 (or floats in 0..255); 0 for any gray image."""
  rgb = np.asarray(rgb, np.float64)
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  rg, yb = r - g, 0.5 * (r + g) - b
  return float(np.sqrt(rg.std() ** 2 + yb.std() ** 2)
               + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


QUARTER = 4              # reading-distance scale: 1/4 of the evaluation's side
PAPER_GRAY = 250         # a page pixel this light or lighter is bare paper
COLOURED_CHROMA = 5.0    # LAB chroma from which a pixel counts as coloured


def quarter(rgb: np.ndarray) -> np.ndarray:
  """uint8 RGB (H, W, 3) -> its area average at 1/4 scale (at least 1 x 1), float32 0..255:
  what a reader's eye sees of screentone. Floats, so that the average is not rounded twice."""
  import cv2
  rgb = np.asarray(rgb, np.float32)
  h, w = rgb.shape[:2]
  size = (max(1, round(w / QUARTER)), max(1, round(h / QUARTER)))
  return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def psnr_quarter(rgb_true: np.ndarray, rgb_pred: np.ndarray) -> float:
  """PSNR (MAX = 255) of the two images' 1/4-scale area averages."""
  return psnr(quarter(rgb_true), quarter(rgb_pred))


def ab_error_quarter(rgb_true: np.ndarray, rgb_pred: np.ndarray) -> float:
  """Mean Euclidean ab distance (LAB units) between the two images' 1/4-scale area averages:
  the colour error at reading distance, where the screen no longer counts."""
  from koala import colour
  lab_t = colour.rgb_to_lab(quarter(rgb_true) / np.float32(255.0))
  lab_p = colour.rgb_to_lab(quarter(rgb_pred) / np.float32(255.0))
  d = lab_p[..., 1:].astype(np.float64) - lab_t[..., 1:]
  return float(np.mean(np.sqrt(np.sum(d * d, axis=-1))))


def paper_colour_counts(page_gray: np.ndarray, rgb_pred: np.ndarray) -> tuple[int, int]:
  """-> (paper pixels that took colour, paper pixels): paper is page gray >= PAPER_GRAY, coloured
  is output LAB chroma >= COLOURED_CHROMA. Counts, so that a split pools them over pixels."""
  from koala import colour
  paper = np.asarray(page_gray) >= PAPER_GRAY
  lab = colour.rgb_to_lab(np.asarray(rgb_pred, np.uint8))
  coloured = np.hypot(lab[..., 1], lab[..., 2]) >= COLOURED_CHROMA
  return int(np.count_nonzero(coloured & paper)), int(np.count_nonzero(paper))


def _nanmean(values: list) -> float | None:
  finite = [v for v in values if not np.isnan(v)]
  return float(np.mean(finite)) if finite else None


class Accumulator:
  """Streams (prediction, truth) pairs into docs/SPEC.md's metrics for one predictor."""

  def __init__(self):
    self.sq_err_sum = 0.0
    self.ab_values = 0          # number of ab values (pixels x 2) for the MSE
    self.matches = 0
    self.pixels = 0
    self.auc_counts = np.zeros(len(AUC_THRESHOLDS), np.int64)
    self.auc_pixels = 0
    self.per_image = {"psnr": [], "ssim": [], "colorfulness": []}

  def add_square(self, ab_true_norm: np.ndarray, ab_pred_norm: np.ndarray) -> None:
    """The original project's metrics, on whole 224 x 224 squares in its loss space (ab / 128)."""
    d = np.asarray(ab_pred_norm, np.float64) - np.asarray(ab_true_norm, np.float64)
    self.sq_err_sum += float(np.sum(d * d))
    self.ab_values += d.size
    m = argmax_matches(ab_true_norm, ab_pred_norm)
    self.matches += int(m.sum())
    self.pixels += m.size

  def add_image(self, rgb_true: np.ndarray, rgb_pred: np.ndarray, ab_true: np.ndarray,
                ab_pred: np.ndarray) -> None:
    """The papers' metrics, on one image (sRGB uint8 and ab in LAB units, same H x W)."""
    self.auc_counts += ab_error_counts(ab_true, ab_pred)
    self.auc_pixels += np.asarray(ab_true).size // 2
    self.per_image["psnr"].append(psnr(rgb_true, rgb_pred))
    self.per_image["ssim"].append(ssim(rgb_true, rgb_pred))
    self.per_image["colorfulness"].append(colorfulness(rgb_pred))

  def result(self) -> dict:
    return {
        "mse": self.sq_err_sum / max(self.ab_values, 1),
        "keras_accuracy": self.matches / max(self.pixels, 1),
        "psnr": float(np.mean(self.per_image["psnr"])) if self.per_image["psnr"] else None,
        "ssim": _nanmean(self.per_image["ssim"]),
        "auc": float(np.mean(self.auc_counts / max(self.auc_pixels, 1))),
        "colorfulness": (float(np.mean(self.per_image["colorfulness"]))
                         if self.per_image["colorfulness"] else None),
        "images": len(self.per_image["psnr"]),
    }
