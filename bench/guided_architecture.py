"""Which hint path learns faster: python bench/guided_architecture.py [--steps=N] [--width=W]

The issue's question: the SPEC trunk has no skip connections, so hints entering with L must
cross the 28 x 28 bottleneck. This trains both of build_guided_colorizer's architectures
("input": hints at the input only; "multiscale": hints at several scales plus skips) from the
same seed, the same records and the same number of steps on the hint task of
tests/trainer_records.py (flat cells of one lightness in random colours: only a hint can tell a
cell's colour), and prints, after each block of steps, the validation MSE with 10 hints divided
by the MSE with none. 1.0 = the hints are ignored; lower is better. Synthetic data, no
../shared/data needed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from tests import trainer_records  # noqa: E402
from trainer import task  # noqa: E402
from trainer import input as trainer_input  # noqa: E402
from trainer.model import GUIDED_ARCHITECTURES, build_guided_colorizer  # noqa: E402


def hinted_mse(model, info, hints: int, image_size: int) -> float:
  ds = trainer_input.make_dataset(info, "val", 16, training=False, image_size=image_size,
                                  guided=trainer_input.eval_guidance(hints))
  errors = [np.mean((np.asarray(model.predict_on_batch(x)) - y.numpy()) ** 2)
            for x, y in ds]
  return float(np.mean(errors))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--steps", type=int, default=600)
  p.add_argument("--blocks", type=int, default=3)
  p.add_argument("--width", type=float, default=0.25)
  p.add_argument("--image_size", type=int, default=56)
  p.add_argument("--batch_size", type=int, default=8)
  p.add_argument("--learning_rate", type=float, default=1e-3)
  args = p.parse_args(argv)
  print(common.machine(), "load", os.getloadavg())
  with tempfile.TemporaryDirectory(prefix="koala-arch-") as tmp:
    trainer_records.write_hint_task_records(tmp, {"train": 256, "val": 32})
    info = trainer_input.check_records(tmp, splits=("train", "val"))
    for architecture in GUIDED_ARCHITECTURES:
      import keras
      keras.utils.set_random_seed(0)
      model = task.compile_model(build_guided_colorizer(
          args.image_size, width=args.width, architecture=architecture), args.learning_rate)
      ds = trainer_input.make_dataset(info, "train", args.batch_size, training=True, seed=0,
                                      image_size=args.image_size,
                                      guided=trainer_input.TRAINING_GUIDANCE)
      start, done = time.perf_counter(), 0
      for _ in range(args.blocks):
        model.fit(ds, steps_per_epoch=args.steps // args.blocks, epochs=1, verbose=0)
        done += args.steps // args.blocks
        with_hints = hinted_mse(model, info, 10, args.image_size)
        without = hinted_mse(model, info, 0, args.image_size)
        print(f"{architecture:<10} params {model.count_params():>9,} steps {done:>5} "
              f"({time.perf_counter() - start:5.0f} s): val MSE 10 hints {with_hints:.5f}, "
              f"0 hints {without:.5f}, ratio {with_hints / without:.3f}", flush=True)
  print("load", os.getloadavg())


if __name__ == "__main__":
  main()
