"""Input throughput of the trainer's tf.data reader: python bench/input_throughput.py [options]

Reads real records (made by the pipeline from ../shared/data's train split, in place; skips
cleanly where that folder is absent) and measures, in one run:
  1. reference: bare reading and parsing on one core (TFRecordDataset -> batch -> parse_batch),
     no shuffle, no interleave;
  2. trainer.input.make_dataset(training=True) on one core: parallel interleave, shuffle buffer,
     parse after batching, ab / 128, the in-graph record checks, prefetch: examples/s per core,
     and its ratio to (1). Target: >= 2,000 examples/s per core, so 4-5 cores feed one H200;
  3. the same on every core of the machine.
"One core" is tf.data's own thread pool limited to one thread (private_threadpool_size=1 and
max_intra_op_parallelism=1), with the consuming Python loop on top.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
from bench import trainer_records  # noqa: E402
from koala import schema  # noqa: E402
from trainer import input as trainer_input  # noqa: E402

TARGET_PER_CORE = 2000


def threads(ds: tf.data.Dataset, n: int | None) -> tf.data.Dataset:
  if n is None:
    return ds
  options = tf.data.Options()
  options.threading.private_threadpool_size = n
  options.threading.max_intra_op_parallelism = 1
  return ds.with_options(options)


def rate(ds: tf.data.Dataset, batches: int, batch_size: int) -> float:
  """Examples/s over `batches` batches, after a few to fill buffers and the shuffle."""
  it = iter(ds)
  for _ in range(5):
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * batch_size / (time.perf_counter() - start)


def bare(files: list[str], batch_size: int) -> tf.data.Dataset:
  return tf.data.TFRecordDataset(files).repeat().batch(batch_size).map(schema.parse_batch)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--records_dir", help="Default: build from ../shared/data train split.")
  p.add_argument("--limit", type=int, help="Use only the first N images of the train split.")
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--batches", type=int, default=150)
  p.add_argument("--shuffle_buffer", type=int, default=trainer_input.DEFAULT_SHUFFLE_BUFFER)
  args = p.parse_args(argv)

  if args.records_dir:
    records_dir = args.records_dir
  else:
    common.shared_data()
    records_dir, _ = trainer_records.build_records("train", args.limit,
                                                   val_fraction=trainer_records.TRAIN_VAL_FRACTION,
                                                   pipeline_args=("--num_shards=4",))
  info = trainer_input.check_records(records_dir, splits=("train",))
  files = info.files["train"]
  print(f"{common.machine()}; {info.count('train')} records in {len(files)} shards, "
        f"batch {args.batch_size}, shuffle buffer {args.shuffle_buffer}")

  reference = rate(threads(bare(files, args.batch_size), 1), args.batches, args.batch_size)
  make = lambda: trainer_input.make_dataset(info, "train", args.batch_size, training=True,
                                            shuffle_buffer=args.shuffle_buffer, seed=0)
  one = rate(threads(make(), 1), args.batches, args.batch_size)
  cores = os.cpu_count()
  every = rate(make(), args.batches, args.batch_size)
  print(f"bare parse, 1 core (reference):   {reference:8.0f} examples/s")
  print(f"trainer input, 1 core:            {one:8.0f} examples/s  "
        f"ratio {one / reference:.2f} to the reference  (target >= {TARGET_PER_CORE}/core: "
        f"{'met' if one >= TARGET_PER_CORE else 'NOT met'})")
  print(f"trainer input, all {cores} cores:      {every:8.0f} examples/s  "
        f"({every / cores:.0f} per core)")
  return {"reference": reference, "one_core": one, "all_cores": every}


if __name__ == "__main__":
  main()
