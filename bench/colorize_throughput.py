"""Batch colorization throughput: serving.beam_colorize (Beam RunInference) against in-process
batch_colorize, on the same real manga pages, in the same run.

  python bench/colorize_throughput.py [--limit=N] [--keep_dir=DIR] [--beam_args="..."]

What it builds: the full-size colorizer (untrained; throughput does not depend on the weights)
and Inception-ResNet-v2 (random weights, the same graph as ImageNet's), exported as users export
(bench/serving_latency.py's export_full_size).

What it measures (pages from ../shared/data/manga, read in place through hard links; skips cleanly
where that folder is absent):
  * reference: serving.inference.batch_colorize over the pages, with the model already loaded
    and warm (one page coloured first): pages/s, run before and after the pipeline (the mean
    is the reference); its start-up (load + first page) apart;
  * serving.beam_colorize with the default local runner (FnApiRunner, one process), from a cold
    model: pages/s after its first batch is written, its start-up (Beam, model load, first
    batch) apart;
Rates come from the coloured pages' write times, so start-up is excluded on both sides alike.
  * the networks alone (the export's embedder + colorizer on one input), to split a page's cost
    into the networks, which a GPU takes over, and the page-sized work (decode, letterbox,
    LAB -> sRGB, PNG), which stays on the worker's CPUs.
Both sides skip pages already in colour by the same test (the client's --skip_colour_pages).
Target: pipeline / reference >= 0.9.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.serving_latency import export_full_size  # noqa: E402
from trainer.model import AB_OUTPUT  # noqa: E402


def steady_rate(out: str, start: float, first_batch: int) -> tuple[float, float]:
  """From the coloured pages' write times (the .png files; pages kept in colour keep their own
  extension and are left out): -> (pages/s after the first batch is written, seconds from
  `start` to that first batch). The first batch's pages count as start-up."""
  times = sorted(os.stat(os.path.join(d, f)).st_mtime for d, _, fs in os.walk(out)
                 for f in fs if f.endswith(".png"))
  first = times[first_batch - 1]
  return (len(times) - first_batch) / (times[-1] - first), first - start


def time_reference(base: str, src: str, out: str) -> tuple[float, float, float]:
  """-> (pages/s of batch_colorize once its first page is written, seconds to that page: model
  load and first page, CPU seconds of the whole call)."""
  from serving import exports, inference
  exports.load_model.cache_clear()
  start, cpu = time.time(), time.process_time()
  report = inference.batch_colorize(base, src, out, skip_colour=True, progress=False)
  assert not report.failed, report.failed
  return (*steady_rate(out, start, 1), time.process_time() - cpu)


def time_pipeline(base: str, src: str, out: str, extra: list[str]):
  """-> (pages/s once the first batch is written, seconds to it: Beam, model load, first batch;
  CPU seconds of the whole run (one process: FnApiRunner in_memory); the manifest's counts)."""
  from serving import beam_colorize, exports
  exports.load_model.cache_clear()   # the run loads its model cold, as a worker does
  start, cpu = time.time(), time.process_time()
  beam_colorize.run([f"--model={base}", f"--input={src}", f"--output_dir={out}", *extra])
  cpu = time.process_time() - cpu
  batch = int(next((a.split("=")[1] for a in extra if a.startswith("--max_batch_size=")), 16))
  rate, startup = steady_rate(out, start, batch)
  with open(os.path.join(out, "manifest.json")) as f:
    return rate, startup, cpu, json.load(f)["counts"]


def time_networks(base: str, runs: int = 5) -> float:
  """Seconds per page of the export's embedder + colorizer alone (batch 1), median."""
  import numpy as np
  import tensorflow as tf
  from serving import exports
  loaded = exports.load_model(base)
  x299 = tf.random.uniform((1, 299, 299, 3))
  size = loaded.colorize_fn.structured_input_signature[0][0].shape[1]
  l = tf.random.uniform((1, size, size, 1), 0, 100)
  out = []
  for i in range(runs + 1):
    t = time.perf_counter()
    loaded.colorize_fn(l, loaded.embed_fn(x299))[AB_OUTPUT].numpy()
    if i:
      out.append(time.perf_counter() - t)
  return float(np.median(out))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--limit", type=int, default=0, help="pages to use (0: all)")
  p.add_argument("--keep_dir", default=None, help="reuse/keep the export here")
  p.add_argument("--beam_args", default="", help="extra Beam flags for serving.beam_colorize")
  args = p.parse_args(argv)
  folder = common.shared_data("manga")
  paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                 if f.lower().endswith((".png", ".jpg", ".jpeg", ".webp")))
  paths = paths[:args.limit or None]
  print(f"machine: {common.machine()}; load average {os.getloadavg()}; "
        f"{len(paths)} pages from {folder}")
  work = args.keep_dir or tempfile.mkdtemp(prefix="koala-bench-")
  try:
    base = export_full_size(work)
    runs = os.path.join(work, "runs")
    shutil.rmtree(runs, ignore_errors=True)
    every = common.stage_files(paths, f"{runs}/in_all")
    extra = args.beam_args.split()

    # The reference runs before and after the pipeline, and their mean is the reference, so a
    # change in the shared machine's load during the run weighs on both sides alike.
    ref_before, ref_startup, ref_cpu1 = time_reference(base, every, f"{runs}/ref1")
    rate, startup, cpu, counts = time_pipeline(base, every, f"{runs}/beam", extra)
    ref_after, _, ref_cpu2 = time_reference(base, every, f"{runs}/ref2")
    ref_rate = (ref_before + ref_after) / 2
    print(f"reference, batch_colorize in-process: {ref_rate:6.3f} pages/s   "
          f"(before {ref_before:.3f}, after {ref_after:.3f}; start-up to the first page "
          f"{ref_startup:.1f} s, excluded)")
    print(f"serving.beam_colorize, FnApiRunner:   {rate:6.3f} pages/s   "
          f"(start-up to the first batch written {startup:.1f} s, excluded; counts {counts})")
    print(f"ratio pipeline / reference:           {rate / ref_rate:6.2f}          (target >= 0.9)")
    ref_cpu = (ref_cpu1 + ref_cpu2) / 2
    print(f"CPU seconds per page, start-up included: reference {ref_cpu / len(paths):.2f} "
          f"(before {ref_cpu1 / len(paths):.2f}, after {ref_cpu2 / len(paths):.2f}), pipeline "
          f"{cpu / len(paths):.2f}: on a shared machine wall-clock rates also measure how much "
          "of the CPU each side won from the other jobs")
    networks = time_networks(base)
    page_s = 1 / rate
    print(f"per page: {page_s:.2f} s wall on {os.cpu_count()} cores, of which the networks "
          f"alone {networks:.2f} s and page-sized work {page_s - networks:.2f} s")
    print(f"load average after: {os.getloadavg()}")
    print("NOTE: Inception-ResNet-v2 ran with random weights (same cost as ImageNet weights).")
  finally:
    if not args.keep_dir:
      shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
