"""python -m trainer.evaluate --records_dir=DIR --job_dir=DIR [--split=test]

Scores the trained model (model_dir(job_dir)/colorizer.keras) on one split of the records, in
one table next to the two baselines every colorization result needs:
  gray         ab = 0 everywhere (the input, unchanged)
  mean colour  the training split's mean ab at every pixel
Metrics (trainer.metrics): the original project's MSE and "accuracy" on the whole 224 x 224 squares
it trained on, and PSNR, SSIM, AuC and colorfulness on each image's own box inside the square
(letterbox padding cut away), with the ground truth's colorfulness for comparison.

Writes <job_dir>/evaluation/<split>/metrics.json and samples.png (rows: gray input | model |
mean colour | ground truth), and prints the table.

--hints=0,1,2,5,10,20,50,100 (a guided model, trainer.task --hints) scores it per number of
colour hints instead, beside Levin et al.'s propagation of the same hints and the baselines, plus
a row with each example's own palette (trainer.guided_eval); psnr_vs_hints.png joins the outputs. It refuses records made with another embedder
than the one the model was trained on (embedder.json), as the trainer refuses mixed records.

A manga job (model/rendering.json names a manga rendering, trainer.artifacts.TrainedModelInfo) is
scored by trainer.manga_eval instead: coloured pages composed by the manga rule against the
colour art, per number of dots (default 0,1,2,5,10,20,50,100 for a guided job, 0 for an
unguided one), beside a classical flat fill, the page itself, the baselines and two ceilings;
psnr_vs_dots.png joins the outputs. Records of another rendering than the job's are refused
both ways (a gray job on manga pages, a manga job on gray records): scores across renderings
would mean nothing. Refusals print "error: ..." and exit with status 2.
"""
from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from koala import colour, images, schema
from trainer import artifacts, callbacks, guided_eval, manga_eval, metrics
from trainer import input as trainer_input
from trainer.model import L_INPUT, is_guided
# Shared with guided_eval; mean_ab and predict_ab stay importable from here, as callers expect.
from trainer.predict import MAX_MEAN_EXAMPLES, crop_to_image, mean_ab, predict_ab  # noqa: F401

PREDICTORS = ("model", "gray", "mean_colour")
_LOG = logging.getLogger(__name__)


def evaluate(model, info: trainer_input.RecordsInfo, split: str = "test", batch_size: int = 32,
             max_examples: int | None = None, mean_colour: np.ndarray | None = None,
             samples: int = 6):
  """-> (metrics dict, sample grid as uint8 RGB: gray | model | mean colour | truth per row)."""
  mean_colour = mean_ab(info) if mean_colour is None else np.asarray(mean_colour, np.float32)
  acc = {name: metrics.Accumulator() for name in PREDICTORS}
  truth_cf, rows, seen = [], [], 0
  ds = trainer_input.make_dataset(info, split, batch_size, training=False, with_metadata=True)
  if max_examples is not None:
    ds = ds.unbatch().take(max_examples).batch(batch_size)
  for inputs, target, meta in ds:
    l_batch = inputs[L_INPUT].numpy()
    true_norm = target.numpy()
    preds = {"model": predict_ab(model, inputs),
             "gray": np.zeros_like(true_norm),
             "mean_colour": np.broadcast_to(mean_colour / colour.AB_SCALE, true_norm.shape)}
    for i in range(len(true_norm)):
      crop = crop_to_image(int(meta[schema.ORIGINAL_HEIGHT][i]),
                           int(meta[schema.ORIGINAL_WIDTH][i]))
      true_rgb = callbacks.colorize_lab(l_batch[i], true_norm[i])
      truth_cf.append(metrics.colorfulness(crop(true_rgb)))
      row = []
      for name in PREDICTORS:
        pred_rgb = callbacks.colorize_lab(l_batch[i], preds[name][i])
        acc[name].add_square(true_norm[i], preds[name][i])
        acc[name].add_image(crop(true_rgb), crop(pred_rgb), crop(true_norm[i]) * colour.AB_SCALE,
                            crop(preds[name][i]) * colour.AB_SCALE)
        row.append(pred_rgb)
      if len(rows) < samples:   # gray | model | mean colour | truth
        rows.append(np.concatenate([row[1], row[0], row[2], true_rgb], axis=1))
    seen += len(true_norm)
  if seen == 0:
    raise ValueError(f"no {split} records under {info.records_dir}")
  results = {
      "split": split,
      "examples": seen,
      "records_dir": info.records_dir,
      "embedder_id": info.embedder_id,
      "mean_colour_ab": [float(v) for v in mean_colour],
      "ground_truth_colorfulness": float(np.mean(truth_cf)),
      "predictors": {name: a.result() for name, a in acc.items()},
  }
  return results, np.concatenate(rows, axis=0)


COLUMNS = (("mse", "MSE ab/128", "{:.5f}"), ("keras_accuracy", "Keras 'acc'", "{:.4f}"),
           ("psnr", "PSNR dB", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"), ("auc", "AuC", "{:.4f}"),
           ("colorfulness", "colorfulness", "{:.2f}"))


def format_table(results: dict) -> str:
  """The readable table: one row per predictor, then the ground truth's colorfulness."""
  header = f"{'':<12}" + "".join(f"{title:>14}" for _, title, _ in COLUMNS)
  lines = [f"{results['split']} split, {results['examples']} images", header]
  for name, row in results["predictors"].items():
    cells = "".join(f"{(fmt.format(row[key]) if row[key] is not None else '-'):>14}"
                    for key, _, fmt in COLUMNS)
    lines.append(f"{name:<12}" + cells)
  cf = f"{results['ground_truth_colorfulness']:.2f}"
  lines.append(f"{'truth':<12}" + "".join(f"{'':>14}" for _ in COLUMNS[:-1]) + f"{cf:>14}")
  return "\n".join(lines)


def check_embedder(info: trainer_input.RecordsInfo, trained: artifacts.TrainedModelInfo) -> None:
  """Refuses records whose embedder is not the one the model was trained with."""
  trained = trained.embedder.identity
  if trained and trained != info.embedder_id:
    raise trainer_input.RecordsMismatchError(
        f"records under {info.records_dir} were embedded by {info.embedder_id!r}, but the model "
        f"was trained on {trained!r}: its scores on them would mean nothing")


def check_rendering(info: trainer_input.RecordsInfo, trained: artifacts.TrainedModelInfo,
                    job_dir: str) -> None:
  """Refuses records of another rendering than the one the job was trained on."""
  if info.rendering != trained.rendering:
    raise trainer_input.RecordsMismatchError(
        f"records under {info.records_dir} are {info.rendering!r} renderings, but the job in "
        f"{job_dir} was trained on {trained.rendering!r} records: its scores on them "
        f"would mean nothing")


def write_outputs(results: dict, grid: np.ndarray, out_dir: str) -> None:
  artifacts.write_json(artifacts.join(out_dir, "metrics.json"), results)
  artifacts.write_bytes(artifacts.join(out_dir, "samples.png"), images.encode_png(grid))


def parse_args(argv) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m trainer.evaluate", description=__doc__.split("\n")[2])
  p.add_argument("--records_dir", required=True)
  p.add_argument("--job_dir", required=True,
                 help="The training job's directory (model_dir inside).")
  p.add_argument("--split", default="test", choices=schema.SPLITS)
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--max_examples", type=int, help="Evaluate only the first N records.")
  p.add_argument("--samples", type=int, default=6, help="Rows in samples.png.")
  p.add_argument("--output_dir", help="Default: <job_dir>/evaluation/<split>.")
  p.add_argument("--hints", type=lambda v: [int(n) for n in v.split(",") if n.strip()],
                 help="Comma-separated hint counts, e.g. 0,1,2,5,10,20,50,100: score a guided "
                      "model against the number of hints (see trainer.guided_eval).")
  p.add_argument("--hint_seed", type=int, default=0, help="Seed of the evaluation hints.")
  p.add_argument("--no_levin", action="store_true",
                 help="Skip Levin et al.'s propagation (about 1 s an image and hint count).")
  p.add_argument("--train_records_dir",
                 help="Records whose train split gives the mean-colour baseline; default: "
                      "--records_dir.")
  return p.parse_args(argv)


def main(argv=None) -> dict:
  """Runs the evaluation; a records mismatch prints "error: ..." and exits with status 2."""
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
  args = parse_args(sys.argv[1:] if argv is None else argv)
  try:
    return run(args)
  except trainer_input.RecordsMismatchError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def _evaluate_manga(model, info, train_info, args, out_dir):
  """trainer.manga_eval on a manga job -> (results, grid, table, outputs)."""
  guided = is_guided(model)
  if args.hints is not None and not guided:
    raise ValueError(f"--hints needs a guided model (trainer.task --hints); the model in "
                     f"{args.job_dir} takes no hints")
  hints = args.hints if args.hints is not None else manga_eval.GUIDED_HINTS
  results, grid = manga_eval.evaluate_manga(
      model, info, args.split, hints, min(args.batch_size, 16), args.max_examples,
      mean_colour=mean_ab(train_info), seed=args.hint_seed, samples=args.samples,
      guided=guided, with_flat_fill=not args.no_levin)
  artifacts.write_bytes(artifacts.join(out_dir, "psnr_vs_dots.png"), manga_eval.plot_psnr(results))
  results["targets"] = manga_eval.check_targets(results)
  table = manga_eval.format_table(results)
  if results["targets"]:
    table += "\ntargets:\n" + manga_eval.format_targets(results["targets"])
  return results, grid, table, "metrics.json, samples.png and psnr_vs_dots.png"


def run(args: argparse.Namespace) -> dict:
  model, trained = artifacts.load_trained(args.job_dir)
  info = trainer_input.check_records(args.records_dir)
  check_embedder(info, trained)
  check_rendering(info, trained, args.job_dir)
  train_info = info if not args.train_records_dir else trainer_input.check_records(
      args.train_records_dir)
  check_embedder(train_info, trained)
  check_rendering(train_info, trained, args.job_dir)
  out_dir = args.output_dir or artifacts.join(args.job_dir, "evaluation", args.split)
  if trained.composition == colour.COMPOSE_MANGA:
    results, grid, table, outputs = _evaluate_manga(model, info, train_info, args, out_dir)
  elif args.hints is None:
    results, grid = evaluate(model, info, args.split, args.batch_size, args.max_examples,
                             mean_colour=mean_ab(train_info), samples=args.samples)
    table, outputs = format_table(results), "metrics.json and samples.png"
  else:
    if not is_guided(model):
      raise ValueError(f"--hints needs a guided model (trainer.task --hints); the model in "
                       f"{args.job_dir} takes no hints")
    results, grid = guided_eval.evaluate_guided(
        model, info, args.split, args.hints, args.batch_size, args.max_examples,
        mean_colour=mean_ab(train_info), seed=args.hint_seed, samples=args.samples,
        with_levin=not args.no_levin)
    artifacts.write_bytes(artifacts.join(out_dir, "psnr_vs_hints.png"),
                          guided_eval.plot_psnr(results))
    table = guided_eval.format_table(results)
    outputs = "metrics.json, samples.png and psnr_vs_hints.png"
  results["model"] = artifacts.join(artifacts.model_dir(args.job_dir), artifacts.MODEL_FILENAME)
  results["embedder"] = trained.embedder.to_dict()
  results["job_rendering"] = trained.rendering_dict()
  if trained.embedder.random_weights:
    results["warning"] = ("the embedder had random weights: these records' embeddings carry "
                          "no semantics")
  write_outputs(results, grid, out_dir)
  print(table)
  if "warning" in results:
    print("WARNING:", results["warning"])
  print(f"wrote {outputs} in {out_dir}")
  return results


if __name__ == "__main__":
  main()
