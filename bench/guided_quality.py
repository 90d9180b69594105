"""The guided colorizer's quality on real art within a CPU budget: python bench/guided_quality.py

  1. records from ../shared/data's train list (colour images; 10% held out for validation) and
     its eval list, by the real pipeline, built in place as bench/trainer_records.py does, with a
     RANDOM-weight embedder (this machine is offline: the embeddings carry no ImageNet
     semantics, so the automatic mode can only use its own encoder);
  2. two trainings side by side, the same budget of wall-clock minutes each, the same size,
     width, batch, learning rate and seed: the guided model (trainer.task --hints) and the SPEC
     model (trainer.task) as the reference for the automatic mode;
  3. the guided model on the eval images per hint count (trainer.evaluate --hints: PSNR, SSIM,
     AuC, colourfulness, Levin et al.'s propagation of the same hints, the baselines, the own-
     palette row) and the SPEC model the usual way; then the issue's targets, each PASS or MISS:
       * 10 hints gain >= 4 dB PSNR over 0 hints;
       * at 10 hints the model beats Levin et al.'s propagation (PSNR);
       * at 10 hints its colourfulness is >= 70% of the truth's;
       * its own palette alone gains >= 1 dB over automatic;
       * its automatic mode's MSE is <= 1.02 x the SPEC model's.
Everything lands in the work folder's guided_quality_<time>/ (metrics.json, plots, samples).
Skips cleanly where ../shared/data is absent.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, trainer_records  # noqa: E402

HINT_COUNTS = "0,1,2,5,10,20,50,100"
WARNING = ("NOTE: the embedder had RANDOM weights (offline machine): the embeddings carry no "
           "semantics, so the automatic mode measures the encoder-decoder alone.")


def _records(work_dir: str):
  shards = ("--num_shards=4",)
  train_dir, _ = trainer_records.build_records(
      "train", val_fraction=trainer_records.TRAIN_VAL_FRACTION, work_dir=work_dir,
      pipeline_args=shards)
  eval_dir, _ = trainer_records.build_records("eval", test_fraction=1.0, work_dir=work_dir,
                                              pipeline_args=shards)
  return train_dir, eval_dir


def train_one(args) -> None:
  """One training run in this process (the parent starts two of these side by side)."""
  from bench.quality import TimeBudget
  from trainer import task
  config = task.TrainConfig(records_dir=args.train_dir, job_dir=args.job, preset="guided-bench",
                            learning_rate=args.learning_rate, epochs=10_000,
                            batch_size=args.batch_size, width=args.width,
                            image_size=args.image_size, seed=0, hints=args.model == "guided",
                            verbose=0)
  budget = TimeBudget(args.budget_minutes * 60)
  start = time.perf_counter()
  _, history = task.train(config, extra_callbacks=[budget])
  summary = {"model": args.model, "steps": budget.steps, "minutes":
             (time.perf_counter() - start) / 60, "val_loss": history.get("val_loss", [])[-3:]}
  with open(os.path.join(args.job, "bench_training.json"), "w") as f:
    json.dump(summary, f)
  print(summary, flush=True)


def _targets(guided: dict, spec: dict) -> list[tuple[str, float, str, bool]]:
  rows = {r["label"]: r["predictors"] for r in guided["rows"]}
  auto, ten, pal = rows["0 hints"]["model"], rows["10 hints"], rows["own palette"]["model"]
  truth_cf = guided["ground_truth_colorfulness"]
  spec_mse = spec["predictors"]["model"]["mse"]
  return [
      ("10 hints - 0 hints, PSNR dB", ten["model"]["psnr"] - auto["psnr"], ">= 4", 
       ten["model"]["psnr"] - auto["psnr"] >= 4.0),
      ("10 hints: model - Levin, PSNR dB", ten["model"]["psnr"] - ten["levin"]["psnr"], "> 0",
       ten["model"]["psnr"] > ten["levin"]["psnr"]),
      ("10 hints: colourfulness / truth's", ten["model"]["colorfulness"] / truth_cf, ">= 0.70",
       ten["model"]["colorfulness"] >= 0.7 * truth_cf),
      ("own palette - automatic, PSNR dB", pal["psnr"] - auto["psnr"], ">= 1",
       pal["psnr"] - auto["psnr"] >= 1.0),
      ("automatic MSE / SPEC model's MSE", auto["mse"] / spec_mse, "<= 1.02",
       auto["mse"] <= 1.02 * spec_mse),
  ]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--budget_minutes", type=float, default=25.0,
                 help="Training wall-clock minutes for each of the two models (run together).")
  p.add_argument("--learning_rate", type=float, default=1e-3)
  p.add_argument("--batch_size", type=int, default=8)
  p.add_argument("--width", type=float, default=0.25,
                 help="Both models are narrowed alike: a CPU budget of minutes cannot train "
                      "the full-size model (about 1 image/s here).")
  p.add_argument("--image_size", type=int, default=112)
  p.add_argument("--hints", default=HINT_COUNTS)
  p.add_argument("--work_dir", default=trainer_records.DEFAULT_WORK_DIR)
  p.add_argument("--out", help="Default: <work_dir>/guided_quality_<time>.")
  p.add_argument("--skip_training", action="store_true",
                 help="Evaluate the models already trained under --out.")
  p.add_argument("--model", choices=["guided", "spec"], help=argparse.SUPPRESS)
  p.add_argument("--job", help=argparse.SUPPRESS)
  p.add_argument("--train_dir", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.model:
    return train_one(args)
  common.shared_data()
  print(common.machine(), "| load", os.getloadavg(), "|", time.strftime("%Y-%m-%d %H:%M UTC",
                                                                       time.gmtime()))
  train_dir, eval_dir = _records(args.work_dir)
  out = args.out or os.path.join(args.work_dir, f"guided_quality_{int(time.time())}")
  jobs = {m: os.path.join(out, m) for m in ("guided", "spec")}
  if not args.skip_training:
    flags = [f"--budget_minutes={args.budget_minutes}", f"--learning_rate={args.learning_rate}",
             f"--batch_size={args.batch_size}", f"--width={args.width}",
             f"--image_size={args.image_size}", f"--train_dir={train_dir}"]
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), f"--model={m}",
                               f"--job={job}", *flags]) for m, job in jobs.items()]
    if any(proc.wait() for proc in procs):
      sys.exit("a training run failed")
  print("load after training", os.getloadavg())
  from trainer import evaluate
  common_flags = [f"--records_dir={eval_dir}", f"--train_records_dir={train_dir}",
                  "--batch_size=16", "--samples=4"]
  spec = evaluate.main([f"--job_dir={jobs['spec']}", *common_flags])
  guided = evaluate.main([f"--job_dir={jobs['guided']}", f"--hints={args.hints}",
                          *common_flags])
  training = {m: json.load(open(os.path.join(j, "bench_training.json"))) for m, j in jobs.items()}
  targets = _targets(guided, spec)
  print(f"\ntraining: {training}")
  print(f"{'target':<40}{'measured':>10}  {'needs':<8} result")
  for name, value, needs, ok in targets:
    print(f"{name:<40}{value:>10.3f}  {needs:<8} {'PASS' if ok else 'MISS'}")
  summary = {"training": training, "load_after": os.getloadavg(),
             "targets": [{"target": n, "value": v, "needs": r, "pass": ok}
                         for n, v, r, ok in targets],
             "config": vars(args)}
  with open(os.path.join(out, "guided_quality.json"), "w") as f:
    json.dump(summary, f, indent=2)
  print(WARNING)
  print(f"wrote {out}/guided_quality.json; per model: <model>/evaluation/test/")


if __name__ == "__main__":
  main()
