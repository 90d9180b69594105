"""Colorization quality on real art within a CPU budget: python bench/quality.py [options]

  1. records from ../shared/data's train list (colour images; 10% held out for validation) and
     from its eval list, by the real pipeline with a RANDOM-weight embedder (this machine is
     offline, so the embeddings carry no ImageNet semantics: the model can only use its own
     encoder, and the figures understate what the method does with real weights);
  2. trainer.task on the SPEC model (full size, 224 x 224) until the time budget is spent
     (stopped at a batch boundary, then validated);
  3. trainer.evaluate on the eval images: the model against the gray and mean-colour baselines
     (the mean colour of the training records), in one table: the same-run reference.
Skips cleanly where ../shared/data is absent.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from bench import common, trainer_records  # noqa: E402
from trainer import artifacts, evaluate, task  # noqa: E402
from trainer import input as trainer_input  # noqa: E402


class TimeBudget(keras.callbacks.Callback):
  """Stops training once `seconds` have passed since training began."""

  def __init__(self, seconds: float):
    super().__init__()
    self.seconds = seconds
    self.steps = 0

  def on_train_begin(self, logs=None):
    self.start = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    self.steps += 1
    if time.perf_counter() - self.start > self.seconds:
      self.model.stop_training = True


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--budget_minutes", type=float, default=15.0, help="Training time (CPU).")
  p.add_argument("--learning_rate", type=float, default=5e-4,
                 help="Koala_0005_100's: the fastest of the original project's rates that did not diverge.")
  p.add_argument("--batch_size", type=int, default=8,
                 help="Smaller than the original project's 32, for more updates within a CPU budget.")
  p.add_argument("--width", type=float, default=1.0, help="1.0 is the SPEC model.")
  p.add_argument("--image_size", type=int, default=224)
  p.add_argument("--work_dir", default=trainer_records.DEFAULT_WORK_DIR)
  args = p.parse_args(argv)
  common.shared_data()
  print(common.machine())

  shards = ("--num_shards=4",)
  train_dir, train_manifest = trainer_records.build_records(
      "train", val_fraction=trainer_records.TRAIN_VAL_FRACTION, work_dir=args.work_dir,
      pipeline_args=shards)
  eval_dir, _ = trainer_records.build_records("eval", test_fraction=1.0, work_dir=args.work_dir,
                                              pipeline_args=shards)
  job = os.path.join(args.work_dir, f"quality_job_{int(time.time())}")
  config = task.TrainConfig(records_dir=train_dir, job_dir=job, preset="quality-bench",
                            learning_rate=args.learning_rate, epochs=1000,
                            batch_size=args.batch_size, width=args.width,
                            image_size=args.image_size, seed=0)
  budget = TimeBudget(args.budget_minutes * 60)
  start = time.perf_counter()
  model, history = task.train(config, extra_callbacks=[budget])
  minutes = (time.perf_counter() - start) / 60
  train_info = trainer_input.check_records(train_dir)
  print(f"trained {budget.steps} steps of batch {args.batch_size} "
        f"({budget.steps * args.batch_size / train_info.count('train'):.1f} epochs of "
        f"{train_info.count('train')} images) in {minutes:.1f} min; "
        f"val_loss by epoch: {[round(v, 5) for v in history['val_loss']]}")

  eval_info = trainer_input.check_records(eval_dir)
  results, grid = evaluate.evaluate(model, eval_info, "test", batch_size=16,
                                    mean_colour=evaluate.mean_ab(train_info))
  results["embedder"] = artifacts.records_embedder(train_manifest).to_dict()
  results["training"] = {"steps": budget.steps, "batch_size": args.batch_size,
                         "minutes": minutes, "learning_rate": args.learning_rate,
                         "width": args.width, "image_size": args.image_size}
  evaluate.write_outputs(results, grid, os.path.join(job, "evaluation", "eval"))
  print(evaluate.format_table(results))
  print("NOTE: the embedder had RANDOM weights (offline machine): the embeddings carry no "
        "semantics, so this measures the encoder-decoder alone.")
  print(f"wrote {job}/evaluation/eval/metrics.json and samples.png")


if __name__ == "__main__":
  main()
