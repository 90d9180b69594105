"""The evaluation of a manga job (trained on `pipeline.run --render=manga` records): the coloured
page against the colour art the page was rendered from.

Why its own evaluation: a manga job's output is not "the input's L plus predicted ab" but the
page multiplied by a flat colour (koala.colour.manga_page_rgb), and its truth is the colour art,
whose L the page does not have (paper is white where the art is a mid-tone skin). So every
predictor here is an sRGB page scored against the art's sRGB (LAB(truth L, true ab)), on each
image's own box (letterbox cut away). The page is the model's input L (the rendering's, at 224)
turned back into gray levels (colour.l_to_neutral_gray, to uint8), as the served graph sees it.

Predictors (per hint count where they take dots, else once):
  model           the job's model alone (the dots are its input), composed as the served page
                  composes the model's colours (koala.regions.manga_page without the dots and
                  without flattening: flats stopped at the lines, the page multiplied over them)
  model_fill      the same, and each dot filling its region in its colour (the dot's colour is
                  the mean true colour under it, as a user picks the colour they mean)
  model_flat      the served page: model_fill, and every region of the model's own colour laid
                  flat at its mean (koala.regions.flatten; Style2Paints' flattening)
  flat_fill       Levin et al. 2004 (trainer.levin) spreading the same dots over the descreened
                  page (`descreen`), composed by the manga rule: the classical flat fill
  page            the page as it is (gray RGB): what the reader has without us
  gray            the art's own L with ab = 0: the original project's "gray" baseline (not
                  available to a user, who has only the page: it bounds what lightness alone
                  scores)
  mean_colour     the train split's mean ab everywhere, composed by the manga rule
  keep_l_ceiling  colour.page_rgb(page, true ab): the old composition's best (no colour on paper)
  manga_ceiling   colour.manga_page_rgb(page, true ab): the manga rule's best
  multiply_ceiling  the colour art times the page (sRGB Multiply): the best of the other design
                  the issue offered, a network that predicts L as well as ab and lays the page's
                  ink over it; what predicting L could add at most over the manga rule
Dots: trainer.input.eval_guidance(n), seeded per record, nested across counts, the same for the
model and the flat fill. An unguided job is scored at 0 dots only.

Metrics (trainer.metrics): PSNR; PSNR and mean ab error at 1/4 scale (a reader's eye dissolves
the screen); SSIM; colourfulness next to the truth's; the share of paper pixels (page gray >=
250) that take colour (chroma >= 5), pooled over the split's paper pixels. Per-image metrics are
averaged over images.
"""
from __future__ import annotations


import cv2
import numpy as np

from koala import colour, guidance, regions, schema
from trainer import callbacks, levin, metrics
from trainer import input as trainer_input
from trainer.guided_eval import _draw_dots
from trainer.model import HINTS_INPUT, L_INPUT
from trainer.predict import crop_to_image, mean_ab, predict_ab

GUIDED_HINTS = (0, 1, 2, 5, 10, 20, 50, 100)   # the default list for a manga guided job
DOTTED = ("model", "model_fill", "model_flat", "flat_fill")   # predictors that take the dots
SERVED = "model_flat"                          # what a user of the export gets
FIXED = ("page", "gray", "mean_colour", "keep_l_ceiling", "manga_ceiling",
         "multiply_ceiling")
SAMPLE_HINTS = 10
# Descreening before the flat fill: a Gaussian blur of sigma 1.25 px at 224. The renderer's
# screens have pitches of 4-10 px at its 896 px work side, 1-2.5 px here after the area
# downscale, so what is left of a screen is a 1-3 px ripple; Levin's affinities compare
# neighbouring pixels, and that ripple would cut every toned region into dot-sized islands
# that no dot's colour crosses. A blur of sigma 1.25 flattens periods up to ~3 px while a
# 1-2 px ink line between regions stays a clear dip, so the regions' borders survive. A median
# filter was the alternative: it keeps edges sharper but leaves the clumps of noise screens and
# the line screens whole (a line screen is a median's fixed point), so the blur was chosen.
DESCREEN_SIGMA = 1.25


class _Stats:
  """One predictor's (at one count) metrics over the split."""

  def __init__(self):
    self.values = {k: [] for k in ("psnr", "psnr_quarter", "ab_error_quarter", "ssim",
                                   "colorfulness")}
    self.paper_coloured = self.paper = 0

  def add(self, truth: np.ndarray, pred: np.ndarray, page: np.ndarray) -> None:
    v = self.values
    v["psnr"].append(metrics.psnr(truth, pred))
    v["psnr_quarter"].append(metrics.psnr_quarter(truth, pred))
    v["ab_error_quarter"].append(metrics.ab_error_quarter(truth, pred))
    v["ssim"].append(metrics.ssim(truth, pred))
    v["colorfulness"].append(metrics.colorfulness(pred))
    coloured, paper = metrics.paper_colour_counts(page, pred)
    self.paper_coloured += coloured
    self.paper += paper

  def result(self) -> dict:
    def mean(values):
      finite = [x for x in values if np.isfinite(x)]
      return float(np.mean(finite)) if finite else None
    out = {k: mean(v) for k, v in self.values.items()}
    out["paper_colour_share"] = self.paper_coloured / self.paper if self.paper else None
    out["images"] = len(self.values["psnr"])
    return out


def page_of(l_input: np.ndarray) -> np.ndarray:
  """The model's input L (H, W[, 1]) -> the uint8 gray page it stands for."""
  return colour.to_uint8(colour.l_to_neutral_gray(np.asarray(l_input)[..., 0]
                                                  if np.ndim(l_input) == 3 else l_input))


def descreen(page: np.ndarray) -> np.ndarray:
  """uint8 page (H, W) -> its L (H, W, 1) with the screentone blurred away (DESCREEN_SIGMA)."""
  blurred = cv2.GaussianBlur(page.astype(np.float32), (0, 0), DESCREEN_SIGMA)
  return colour.gray_to_l(np.clip(blurred, 0, 255) / np.float32(255.0))[..., None]


def flat_fill(page: np.ndarray, hints: np.ndarray) -> np.ndarray:
  """Levin et al.'s propagation of the dots (hints (H, W, 3)) over the descreened page ->
  ab (H, W, 2) in LAB units."""
  return levin.propagate(descreen(page), *guidance.decode_hints_np(hints))


def dots_image(hints: np.ndarray, truth_rgb: np.ndarray) -> np.ndarray:
  """Hint planes (H, W, 3) and the true colours -> the RGBA hint image a user would send: each
  dot (a connected patch of hinted pixels) in the mean true colour under it."""
  mask = (hints[..., 2] > 0.5).astype(np.uint8)
  rgba = np.zeros(mask.shape + (4,), np.uint8)
  count, labels = cv2.connectedComponents(mask, connectivity=4)
  for k in range(1, count):
    dot = labels == k
    rgba[dot] = (*np.rint(truth_rgb[dot].mean(axis=0)).astype(np.uint8), 255)
  return rgba


def _fixed_predictions(page, true_l, true_ab, mean_colour) -> dict:
  gray_rgb = np.repeat(page[..., None], 3, axis=-1)
  return {
      "page": gray_rgb,
      "gray": callbacks.colorize_lab(true_l, np.zeros_like(true_ab)),
      "mean_colour": colour.manga_page_rgb(page, np.broadcast_to(mean_colour, true_ab.shape)),
      "keep_l_ceiling": colour.page_rgb(page, true_ab),
      "manga_ceiling": colour.manga_page_rgb(page, true_ab),
      "multiply_ceiling": colour.to_uint8(
          callbacks.colorize_lab(true_l, true_ab / colour.AB_SCALE) / 255.0
          * (page[..., None] / 255.0)),
  }


def evaluate_manga(model, info, split: str = "test", hint_counts=GUIDED_HINTS,
                   batch_size: int = 16, max_examples: int | None = None, mean_colour=None,
                   seed: int = 0, samples: int = 4, guided: bool = True,
                   with_flat_fill: bool = True):
  """-> (results dict, samples grid uint8). See the module docstring."""
  hint_counts = sorted({int(n) for n in hint_counts}) if guided else [0]
  max_hints = max(max(hint_counts), 1)
  mean_colour = mean_ab(info) if mean_colour is None else np.asarray(mean_colour, np.float32)
  fixed = {name: _Stats() for name in FIXED}
  rows, truth_cf, seen = [], [], 0
  show = SAMPLE_HINTS if SAMPLE_HINTS in hint_counts else hint_counts[-1]
  cols: dict = {}
  for n in hint_counts:
    stats = {"model": _Stats(), "model_fill": _Stats(), "model_flat": _Stats()}
    if guided and with_flat_fill:
      stats["flat_fill"] = _Stats()
    g = trainer_input.eval_guidance(n, max_hints=max_hints, seed=seed) if guided else None
    ds = trainer_input.make_dataset(info, split, batch_size, training=False,
                                    with_metadata=True, guided=g)
    if max_examples is not None:
      ds = ds.unbatch().take(max_examples).batch(batch_size)
    index, first = 0, n == hint_counts[0]
    for inputs, target, meta in ds:
      l_in, true_ab = inputs[L_INPUT].numpy(), target.numpy() * colour.AB_SCALE
      true_l = meta[schema.L].numpy()
      model_ab = predict_ab(model, inputs) * colour.AB_SCALE
      hints = inputs[HINTS_INPUT].numpy() if guided else None
      for i in range(len(true_ab)):
        crop = crop_to_image(int(meta[schema.ORIGINAL_HEIGHT][i]),
                             int(meta[schema.ORIGINAL_WIDTH][i]))
        page = page_of(l_in[i])
        truth = callbacks.colorize_lab(true_l[i], true_ab[i] / colour.AB_SCALE)
        dots = dots_image(hints[i], truth) if guided else None
        preds = {"model": regions.manga_page(page, model_ab[i], flat_regions=False),
                 "model_fill": regions.manga_page(page, model_ab[i], dots, flat_regions=False),
                 "model_flat": regions.manga_page(page, model_ab[i], dots, flat_regions=True)}
        if "flat_fill" in stats:
          preds["flat_fill"] = colour.manga_page_rgb(page, flat_fill(page, hints[i]))
        for name, rgb in preds.items():
          stats[name].add(crop(truth), crop(rgb), crop(page))
        if first:
          truth_cf.append(metrics.colorfulness(crop(truth)))
          for name, rgb in _fixed_predictions(page, true_l[i], true_ab[i], mean_colour).items():
            fixed[name].add(crop(truth), crop(rgb), crop(page))
        if index < samples:
          if first:
            cols.setdefault("page", []).append(np.repeat(page[..., None], 3, axis=-1))
            cols.setdefault("model 0", []).append(preds["model"])
            cols.setdefault("truth", []).append(truth)
          if guided and n == show:
            cols.setdefault("model dots", []).append(_draw_dots(preds[SERVED], hints[i]))
            if "flat_fill" in preds:
              cols.setdefault("flat fill", []).append(preds["flat_fill"])
        index += 1
    if first:
      seen = index
    rows.append({"hints": n, "predictors": {name: s.result() for name, s in stats.items()}})
  if seen == 0:
    raise ValueError(f"no {split} records under {info.records_dir}")
  results = {
      "split": split, "examples": seen, "records_dir": info.records_dir,
      "embedder_id": info.embedder_id, "rendering": info.rendering,
      "composition": colour.COMPOSE_MANGA, "guided": guided, "hint_counts": hint_counts,
      "hint_seed": seed, "hint_patch": guidance.EVAL_PATCH, "descreen_sigma": DESCREEN_SIGMA,
      "mean_colour_ab": [float(v) for v in mean_colour],
      "ground_truth_colorfulness": float(np.mean(truth_cf)),
      "baselines": {name: s.result() for name, s in fixed.items()},
      "rows": rows,
  }
  order = ["page", "model 0", "model dots", "flat fill", "truth"]
  grid = np.concatenate([np.concatenate(cols[k], axis=0) for k in order if k in cols], axis=1)
  return results, grid


COLUMNS = (("psnr", "PSNR", 2), ("psnr_quarter", "PSNR/4", 2), ("ab_error_quarter", "dab/4", 2),
           ("ssim", "SSIM", 4), ("colorfulness", "CF", 2), ("paper_colour_share", "paper col", 3))


def _cells(row: dict | None) -> str:
  if not row:
    return "".join(f"{'-':>10}" for _ in COLUMNS)
  return "".join(f"{'-' if row[k] is None else format(row[k], f'.{d}f'):>10}"
                 for k, _, d in COLUMNS)


def format_table(results: dict) -> str:
  """One line per (predictor, dots), then the fixed predictors and the truth's colourfulness."""
  lines = [f"{results['split']} split, {results['examples']} manga pages ({results['rendering']}),"
           f" {results['hint_patch']}x{results['hint_patch']} dots (seed {results['hint_seed']}),"
           f" manga composition", f"{'':<22}" + "".join(f"{t:>10}" for _, t, _ in COLUMNS)]
  for name in DOTTED:
    for row in results["rows"]:
      if name in row["predictors"]:
        label = f"{name} {row['hints']} dots"
        lines.append(f"{label:<22}" + _cells(row["predictors"][name]))
  for name, row in results["baselines"].items():
    lines.append(f"{name:<22}" + _cells(row))
  lines.append(f"{'truth':<22}" + f"{'':>40}" + f"{results['ground_truth_colorfulness']:>10.2f}")
  return "\n".join(lines)


def row_at(results: dict, hints: int) -> dict | None:
  return next((r["predictors"] for r in results["rows"] if r["hints"] == hints), None)


def check_targets(results: dict, hints: int = SAMPLE_HINTS) -> list[dict]:
  """The targets, on the served page (`SERVED`): at `hints` dots PSNR >= flat fill + 1 dB, ab
  error (1/4 scale) <= 0.85 x the flat fill's, colourfulness >= 70% of the truth's; at 0 dots
  better PSNR than the page as it is, and no worse an ab error (automatic colour is no worse
  than none)."""
  out = []
  def add(name, value, threshold, met):
    out.append({"target": name, "value": value, "threshold": threshold, "met": bool(met)})
  at, zero = row_at(results, hints), row_at(results, 0)
  if at and "flat_fill" in at:
    m, f = at[SERVED], at["flat_fill"]
    add(f"{hints} dots: PSNR >= flat fill + 1 dB", m["psnr"], f["psnr"] + 1.0,
        m["psnr"] >= f["psnr"] + 1.0)
    add(f"{hints} dots: ab error/4 <= 0.85 x flat fill's", m["ab_error_quarter"],
        0.85 * f["ab_error_quarter"], m["ab_error_quarter"] <= 0.85 * f["ab_error_quarter"])
    truth = results["ground_truth_colorfulness"]
    add(f"{hints} dots: colourfulness >= 70% of the truth's", m["colorfulness"], 0.7 * truth,
        m["colorfulness"] >= 0.7 * truth)
  if zero:
    page = results["baselines"]["page"]
    add("0 dots: PSNR > the page as it is", zero[SERVED]["psnr"], page["psnr"],
        zero[SERVED]["psnr"] > page["psnr"])
    add("0 dots: ab error/4 <= the page's", zero[SERVED]["ab_error_quarter"],
        page["ab_error_quarter"], zero[SERVED]["ab_error_quarter"] <= page["ab_error_quarter"])
  return out


def format_targets(targets: list[dict]) -> str:
  return "\n".join(f"  {'met   ' if t['met'] else 'MISSED'} {t['target']}: {t['value']:.3f} "
                   f"(needs {t['threshold']:.3f})" for t in targets)


def plot_psnr(results: dict) -> bytes:
  """PSNR against the number of dots (PNG bytes): model, flat fill, the fixed predictors."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  x = [r["hints"] for r in results["rows"]]
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  for name, style in (("model", "-o"), ("model_fill", "-^"), ("model_flat", "-v"),
                      ("flat_fill", "-s")):
    if all(name in r["predictors"] for r in results["rows"]):
      ax.plot(x, [r["predictors"][name]["psnr"] for r in results["rows"]], style,
              label=name.replace("_", " "))
  for name, style in (("page", "--"), ("gray", ":"), ("mean_colour", "-."),
                      ("keep_l_ceiling", (0, (1, 3))), ("manga_ceiling", (0, (5, 2)))):
    value = results["baselines"][name]["psnr"]
    if value is not None:
      ax.axhline(value, linestyle=style, color="k", alpha=0.5, label=name.replace("_", " "))
  ax.set_xscale("symlog", linthresh=1)
  ax.set_xlabel("dots per page")
  ax.set_ylabel("PSNR dB (against the colour art)")
  ax.set_title(f"manga pages, {results['split']} split, {results['examples']} images")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  return callbacks.figure_png(fig)
