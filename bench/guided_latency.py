"""colorize_guided against serving_default on one A4 page (1654 x 2339), in-process, same run.

  python bench/guided_latency.py [--runs=12] [--dots=20] [--keep_dir=DIR]

What it builds: the full-size guided colorizer (trainer.model.build_guided_colorizer, untrained:
latency does not depend on the weights) with Inception-ResNet-v2 (random weights), exported with
trainer.export as users export; the page is bench/serving_latency.py's (a real manga page from
../shared/data scaled to A4, read in place, else a generated one).

What it prints, p50 and p95 of --runs, the variants interleaved run by run so that a shared
machine's load falls on all of them alike:
  * serving_default: the reference (the guided model with no guidance);
  * colorize_guided with empty hints and reference (the signature's own overhead);
  * with --dots dots as the Streamlit page and the demo send them (serving.hint_dots: a hint
    PNG at most 448 px on its longer side, stretched over the page by the server);
  * the same dots in a hint PNG of the page's own size (what a paint program makes);
  * with a reference image (a 1000 x 700 colour picture);
  * with both;
and each one's p50 / serving_default's p50 (target: <= 1.1 with hints and a reference), and the
same with the minimum of the runs. On a shared machine the page's p50 moves by more than
guidance costs, so it also times what guidance adds alone (trainer.export.guidance's decoding and
encoding of the hint image and the reference, the rest of the graph being the same) and prints
the ratio that cost implies: (serving_default + guidance alone) / serving_default.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import machine  # noqa: E402
from bench.serving_latency import A4_200DPI, a4_page  # noqa: E402
from trainer.export import signatures  # noqa: E402


def export_guided(work: str) -> str:
  """<work>/models/koala/1: the full-size guided model's export, made once per --keep_dir."""
  from koala import embedder as embedder_lib
  from trainer import artifacts, model as model_lib
  from trainer.export import build as export
  base = os.path.join(work, "models", "koala")
  if os.path.exists(os.path.join(base, "1", "saved_model.pb")):
    return base
  started = time.time()
  emb = embedder_lib.load_embedder("inception_resnet_v2", "random", 0)
  model = model_lib.build_guided_colorizer()
  job = os.path.join(work, "job")
  embedder = embedder_lib.EmbedderInfo.for_flags("inception_resnet_v2", "random", 0, emb.identity)
  artifacts.save_trained(model, artifacts.TrainedModelInfo(embedder), artifacts.model_dir(job))
  export.export(job, base, 1)
  print(f"export: {time.time() - started:.0f} s")
  return base


def hint_png(dots: int, max_side: int | None = None) -> bytes:
  from serving import hint_dots
  rng = np.random.default_rng(0)
  h, w = A4_200DPI
  return hint_dots.hint_png(h, w, [hint_dots.Dot(int(rng.integers(w)), int(rng.integers(h)),
                                                 tuple(int(c) for c in rng.integers(0, 256, 3)))
                                   for _ in range(dots)],
                            **({"max_side": max_side} if max_side else {}))


def reference_png() -> bytes:
  from PIL import Image
  yy, xx = np.mgrid[0:1000, 0:700]
  rgb = np.stack([(xx * 255 // 700), (yy * 255 // 1000), 255 - (xx + yy) * 255 // 1700], -1)
  buf = io.BytesIO()
  Image.fromarray(rgb.astype(np.uint8)).save(buf, "PNG")
  return buf.getvalue()


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--runs", type=int, default=12)
  p.add_argument("--dots", type=int, default=20)
  p.add_argument("--keep_dir", default=None, help="reuse/keep the export here")
  args = p.parse_args(argv)
  import tensorflow as tf

  work = args.keep_dir or tempfile.mkdtemp(prefix="koala-bench-guided-")
  try:
    base = export_guided(work)
    page, what = a4_page(None)
    hints, reference = hint_png(args.dots), reference_png()
    page_sized = hint_png(args.dots, max(A4_200DPI))
    print(f"page: {what}, {len(page) / 1e6:.1f} MB PNG; hint PNG {len(hints) / 1e3:.0f} kB "
          f"({args.dots} dots, hint_dots' size), {len(page_sized) / 1e3:.0f} kB at the page's "
          f"size; reference PNG {len(reference) / 1e3:.0f} kB")
    loaded = tf.saved_model.load(os.path.join(base, "1"))
    default = loaded.signatures[signatures.SERVING_DEFAULT]
    guided = loaded.signatures[signatures.COLORIZE_GUIDED]
    batch = tf.constant([page])
    none = tf.constant([b""])
    variants = {
        "serving_default (reference)": lambda: default(image_bytes=batch),
        "colorize_guided, no guidance": lambda: guided(
            image_bytes=batch, hints_bytes=none, reference_bytes=none),
        f"colorize_guided, {args.dots} dots": lambda: guided(
            image_bytes=batch, hints_bytes=tf.constant([hints]), reference_bytes=none),
        f"colorize_guided, {args.dots} dots, A4 PNG": lambda: guided(
            image_bytes=batch, hints_bytes=tf.constant([page_sized]), reference_bytes=none),
        "colorize_guided, reference": lambda: guided(
            image_bytes=batch, hints_bytes=none, reference_bytes=tf.constant([reference])),
        "colorize_guided, dots + reference": lambda: guided(
            image_bytes=batch, hints_bytes=tf.constant([hints]),
            reference_bytes=tf.constant([reference])),
    }
    from trainer.export import guidance as tf_guidance
    prepare = tf.function(lambda h, r: (
        tf_guidance.hint_planes(tf_guidance.hint_image(h, 10 ** 9), tf.constant(A4_200DPI), 224),
        tf_guidance.palette(r, 10 ** 9)), autograph=False)
    inputs = {name: (h, r) for name, h, r in [
        ("colorize_guided, no guidance", b"", b""),
        (f"colorize_guided, {args.dots} dots", hints, b""),
        (f"colorize_guided, {args.dots} dots, A4 PNG", page_sized, b""),
        ("colorize_guided, reference", b"", reference),
        ("colorize_guided, dots + reference", hints, reference)]}
    times = {name: [] for name in variants}
    alone = {name: [] for name in inputs}
    for run in range(args.runs + 2):         # two warm-up rounds
      for name, fn in variants.items():
        t = time.perf_counter()
        fn()[signatures.PNG_BYTES].numpy()
        if run >= 2:
          times[name].append(time.perf_counter() - t)
      for name, (h, r) in inputs.items():
        t = time.perf_counter()
        [x.numpy() for x in prepare(tf.constant(h), tf.constant(r))]
        if run >= 2:
          alone[name].append(time.perf_counter() - t)
    p50 = {k: float(np.percentile(v, 50)) for k, v in times.items()}
    low = {k: float(np.min(v)) for k, v in times.items()}
    reference_p50 = p50["serving_default (reference)"]
    load = os.getloadavg()
    print(f"machine: {machine()}, TF {tf.__version__}, runs={args.runs}, date "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}")
    for name, values in times.items():
      extra = ""
      if name in alone:
        cost = float(np.percentile(alone[name], 50))
        extra = (f"  | guidance alone p50 {cost * 1e3:.1f} ms, implied ratio "
                 f"{(reference_p50 + cost) / reference_p50:.3f}")
      print(f"{name:<36} p50 {p50[name]:.3f} s  p95 {np.percentile(values, 95):.3f} s  "
            f"ratio {p50[name] / reference_p50:.3f}  min {low[name]:.3f} s ratio "
            f"{low[name] / low['serving_default (reference)']:.3f}{extra}")
    print("target: colorize_guided <= 1.1 x serving_default")
  finally:
    if not args.keep_dir:
      shutil.rmtree(work, ignore_errors=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
