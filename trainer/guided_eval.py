"""The guided colorizer's evaluation: quality against the number of colour hints.

For each hint count n (e.g. 0, 1, 2, 5, 10, 20, 50, 100) every example gets n hints, 5 x 5 dots
drawn from its own true colours and seeded by its content hash (trainer.input.eval_guidance),
so two runs, two models and Levin's propagation all see the same dots; an example's n hints are
the first n of its larger sets. Per count, docs/SPEC.md's metrics (trainer.metrics) for:
  model   the guided colorizer with those hints (no palette)
  levin   Levin et al. 2004's optimisation spreading the same hints (trainer.levin)
then one row "own palette": no hints, the example's own palette (what a reference page of the
same colours would give). Beside every row, the gray and mean-colour baselines (which do not
depend on hints). trainer.evaluate --hints calls this and writes metrics.json, samples.png and
psnr_vs_hints.png.
"""
from __future__ import annotations


import numpy as np

from koala import colour, guidance, schema
from trainer import callbacks, levin, metrics
from trainer import input as trainer_input
from trainer.model import HINTS_INPUT, L_INPUT
from trainer.predict import crop_to_image, mean_ab, predict_ab

PALETTE_ROW = "own palette"
# Zhang et al. 2017 on ImageNet (docs/SPEC.md, "Guidance"): hints -> PSNR, for the plot.
ZHANG_PSNR = {0: 24.43, 1: 25.37, 2: 26.20, 5: 27.39, 10: 28.42, 20: 29.34, 50: 30.42,
              100: 31.13, 200: 31.70, 500: 32.14}
SAMPLE_HINTS = 10


def _crop(meta, i):
  """The i-th image's own box inside its 224 x 224 letterboxed square."""
  return crop_to_image(int(meta[schema.ORIGINAL_HEIGHT][i]), int(meta[schema.ORIGINAL_WIDTH][i]))


def _draw_dots(gray_rgb: np.ndarray, hints: np.ndarray) -> np.ndarray:
  """The gray input with the hint dots painted in their colours (for samples.png)."""
  ab, mask = guidance.decode_hints_np(hints)
  lab = np.concatenate([np.full(mask.shape + (1,), 60.0, np.float32), ab], axis=-1)
  dots = colour.to_uint8(colour.lab_to_rgb(lab))
  out = gray_rgb.copy()
  out[mask] = dots[mask]
  return out


def evaluate_guided(model, info, split: str, hint_counts, batch_size: int = 16,
                    max_examples: int | None = None, mean_colour=None, seed: int = 0,
                    samples: int = 4, with_levin: bool = True):
  """-> (results dict, sample grid uint8). See the module docstring for what is measured."""
  hint_counts = sorted({int(n) for n in hint_counts})
  max_hints = max(max(hint_counts), 1)
  mean_colour = mean_ab(info) if mean_colour is None else np.asarray(mean_colour, np.float32)
  baselines = {"gray": metrics.Accumulator(), "mean_colour": metrics.Accumulator()}
  passes = [(n, False) for n in hint_counts] + [(0, True)]
  rows, truth_cf, seen = [], [], 0
  show = SAMPLE_HINTS if SAMPLE_HINTS in hint_counts else hint_counts[-1]
  cols = {}   # sample columns: name -> list of images
  for n, palette in passes:
    acc = {"model": metrics.Accumulator()}
    if with_levin and not palette:
      acc["levin"] = metrics.Accumulator()
    g = trainer_input.eval_guidance(n, palette=palette, max_hints=max_hints, seed=seed)
    ds = trainer_input.make_dataset(info, split, batch_size, training=False,
                                    with_metadata=True, guided=g)
    if max_examples is not None:
      ds = ds.unbatch().take(max_examples).batch(batch_size)
    index = 0
    first = n == hint_counts[0] and not palette
    for inputs, target, meta in ds:
      l_batch, true_norm = inputs[L_INPUT].numpy(), target.numpy()
      hints = inputs[HINTS_INPUT].numpy()
      preds = {"model": predict_ab(model, inputs)}
      if "levin" in acc:
        preds["levin"] = np.stack([levin.propagate(l_batch[i], *guidance.decode_hints_np(h))
                                   for i, h in enumerate(hints)]) / colour.AB_SCALE
      if first:
        preds["gray"] = np.zeros_like(true_norm)
        preds["mean_colour"] = np.broadcast_to(mean_colour / colour.AB_SCALE, true_norm.shape)
      for i in range(len(true_norm)):
        crop = _crop(meta, i)
        true_rgb = callbacks.colorize_lab(l_batch[i], true_norm[i])
        if first:
          truth_cf.append(metrics.colorfulness(crop(true_rgb)))
        for name, pred in preds.items():
          pred_rgb = callbacks.colorize_lab(l_batch[i], pred[i])
          target_acc = acc.get(name) or baselines[name]
          target_acc.add_square(true_norm[i], pred[i])
          target_acc.add_image(crop(true_rgb), crop(pred_rgb),
                               crop(true_norm[i]) * colour.AB_SCALE,
                               crop(pred[i]) * colour.AB_SCALE)
          if index < samples:
            label = {("model", 0, False): "automatic", ("model", show, False): f"{show} hints",
                     ("levin", show, False): f"Levin {show} hints",
                     ("model", 0, True): PALETTE_ROW}.get((name, n, palette))
            if name == "gray":
              cols.setdefault("gray", []).append(pred_rgb)
              cols.setdefault("truth", []).append(true_rgb)
            if label:
              cols.setdefault(label, []).append(pred_rgb)
        if index < samples and n == show and not palette:
          cols.setdefault(f"{show} dots", []).append(
              _draw_dots(callbacks.colorize_lab(l_batch[i], np.zeros_like(true_norm[i])),
                         hints[i]))
        index += 1
    if first:
      seen = index
    rows.append({"hints": n, "palette": palette,
                 "label": PALETTE_ROW if palette else f"{n} hints",
                 "predictors": {name: a.result() for name, a in acc.items()}})
  if seen == 0:
    raise ValueError(f"no {split} records under {info.records_dir}")
  results = {
      "split": split, "examples": seen, "records_dir": info.records_dir,
      "embedder_id": info.embedder_id, "hint_counts": hint_counts, "hint_seed": seed,
      "hint_patch": guidance.EVAL_PATCH,
      "mean_colour_ab": [float(v) for v in mean_colour],
      "ground_truth_colorfulness": float(np.mean(truth_cf)),
      "baselines": {name: a.result() for name, a in baselines.items()},
      "rows": rows,
  }
  order = ["gray", "automatic", f"{show} dots", f"{show} hints", f"Levin {show} hints",
           PALETTE_ROW, "truth"]
  grid = np.concatenate([np.concatenate(cols[k], axis=0) for k in order if k in cols], axis=1)
  return results, grid


def format_table(results: dict) -> str:
  """One line per hint count: the model's metrics, Levin's, and the baselines' PSNR."""
  b = results["baselines"]
  head = (f"{'':<12}{'PSNR':>8}{'SSIM':>8}{'AuC':>8}{'CF':>8} |{'Levin PSNR':>11}{'SSIM':>8}"
          f"{'AuC':>8}{'CF':>8} |{'gray PSNR':>10}{'mean PSNR':>10}")
  lines = [f"{results['split']} split, {results['examples']} images, "
           f"{guidance.EVAL_PATCH}x{guidance.EVAL_PATCH} hint dots (seed {results['hint_seed']})",
           head]
  fmt = lambda r: ("".join(f"{r[k]:>8.{d}f}" for k, d in
                           (("psnr", 2), ("ssim", 4), ("auc", 4), ("colorfulness", 2)))
                   if r else f"{'-':>8}" * 4)
  for row in results["rows"]:
    p = row["predictors"]
    lines.append(f"{row['label']:<12}{fmt(p['model'])} | {fmt(p.get('levin'))[1:]:>10} |"
                 f"{b['gray']['psnr']:>10.2f}{b['mean_colour']['psnr']:>10.2f}")
  lines.append(f"{'truth CF':<12}{'':>24}{results['ground_truth_colorfulness']:>8.2f}")
  return "\n".join(lines)


def plot_psnr(results: dict) -> bytes:
  """PSNR against the number of hints (PNG bytes): model, Levin, baselines, own palette, and
  Zhang et al.'s ImageNet curve for scale."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  hint_rows = [r for r in results["rows"] if not r["palette"]]
  x = [r["hints"] for r in hint_rows]
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  ax.plot(x, [r["predictors"]["model"]["psnr"] for r in hint_rows], "-o", label="guided model")
  if all("levin" in r["predictors"] for r in hint_rows):
    ax.plot(x, [r["predictors"]["levin"]["psnr"] for r in hint_rows], "-s",
            label="Levin et al. 2004")
  zx = [n for n in ZHANG_PSNR if n <= max(x)]
  ax.plot(zx, [ZHANG_PSNR[n] for n in zx], ":", color="gray",
          label="Zhang et al. 2017 (ImageNet, for scale)")
  for name, style in (("gray", "--"), ("mean_colour", "-.")):
    ax.axhline(results["baselines"][name]["psnr"], linestyle=style, color="k", alpha=0.5,
               label=name.replace("_", " "))
  palette = [r for r in results["rows"] if r["palette"]]
  if palette:
    ax.plot([0], [palette[0]["predictors"]["model"]["psnr"]], "*", markersize=12,
            label="own palette, no hints")
  ax.set_xscale("symlog", linthresh=1)
  ax.set_xlabel("hints per image")
  ax.set_ylabel("PSNR dB")
  ax.set_title(f"{results['split']} split, {results['examples']} images")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  return callbacks.figure_png(fig)
