"""Pipeline throughput on real images: python bench/pipeline_throughput.py [--limit=N]

Measures, in one run, on ../shared/data/color (skips cleanly where that folder is absent):
  1. the stages without the embedder (read, hash, decode, letterbox, LAB, quantise, serialise),
     in one process on one core: images/s per core;
  2. the embedder alone (Inception-ResNet-v2, random weights), batched as the pipeline batches:
     images/s — the reference;
  3. the whole Beam pipeline on the same files with the default local runner: images/s, and its
     ratio to (2). Targets: ratio >= 0.85, stages (1) >= 100 images/s per core.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from koala import embedder as koala_embedder  # noqa: E402
from koala import images, schema  # noqa: E402
from pipeline import preprocess  # noqa: E402
from pipeline import run as pipeline_run  # noqa: E402


def time_stages(paths):
  """Stage (1): everything but the embedder, single-threaded.

  Timed in CPU seconds of this process (time.process_time), which is what "per core" means and
  stays honest when other work shares the machine; the wall-clock rate is printed beside it.
  """
  cv2.setNumThreads(1)
  prepared, start, wall = [], time.process_time(), time.perf_counter()
  zero = np.zeros(schema.EMBEDDING_DIM, np.float32)
  for path in paths:
    with open(path, "rb") as f:
      data = f.read()
    try:
      p = preprocess.prepare_image(data, path)
    except (images.ImageError, preprocess.SkipGray):
      continue
    schema.encode_example(l_u8=p.l_u8, ab_u8=p.ab_u8, embedding=zero, source_path=path,
                          content_hash=p.content_hash, original_size=p.original_size,
                          embedder_id="bench")
    prepared.append(p)
  return (len(paths) / (time.process_time() - start),
          len(paths) / (time.perf_counter() - wall), prepared)


def time_embedder(prepared, batch_size):
  """Stage (2): the embedder alone on the same inputs, after one warm-up batch."""
  emb = koala_embedder.load_embedder(weights="random")
  gray = np.stack([p.embedder_input for p in prepared])
  batches = [np.repeat(gray[i:i + batch_size, ..., None], 3, -1)
             for i in range(0, len(gray), batch_size)]
  emb.embed(batches[0])
  start = time.perf_counter()
  for b in batches:
    emb.embed(b)
  return len(gray) / (time.perf_counter() - start)


def time_pipeline(paths, extra):
  """Stage (3): the whole pipeline, wall clock including start-up."""
  with tempfile.TemporaryDirectory() as tmp:
    src = common.stage_files(paths, os.path.join(tmp, "in"))   # read in place
    start = time.perf_counter()
    pipeline_run.run([f"--input={src}", f"--output_dir={tmp}/out", "--embedder_weights=random",
                      *extra])
    seconds = time.perf_counter() - start
    with open(f"{tmp}/out/{schema.MANIFEST}") as f:
      counts = json.load(f)["counts"]
  return len(paths) / seconds, seconds, counts


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--limit", type=int, default=160, help="Images to use (0: all 442).")
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--beam_args", default="", help="Extra Beam flags for stage (3).")
  args = parser.parse_args()
  folder = common.shared_data("color")
  paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)
  paths = paths[:args.limit or None]
  print(f"machine: {common.machine()}; {len(paths)} images from {folder}")

  time_stages(paths[:16])   # warm-up: imports, tables, file cache
  stages, stages_wall, prepared = time_stages(paths)
  print(f"stages without the embedder: {stages:8.1f} images/s per core   (target >= 100; "
        f"{stages_wall:.1f}/s wall clock)")
  embed = time_embedder(prepared, args.batch_size)
  print(f"embedder alone (batch {args.batch_size}):   {embed:8.2f} images/s   (reference)")
  e2e, seconds, counts = time_pipeline(paths, args.beam_args.split())
  print(f"whole pipeline:              {e2e:8.2f} images/s   ({seconds:.1f} s, counts {counts})")
  print(f"ratio pipeline / embedder:   {e2e / embed:8.2f}          (target >= 0.85)")
  print("NOTE: the embedder ran with random weights (same cost as ImageNet weights).")


if __name__ == "__main__":
  main()
