"""Serving latency of one A4 page (1654 x 2339, 200 dpi): in-process and through the REST
server, against the model compute alone, all measured in the same run.

  python bench/serving_latency.py [--runs=15] [--page=PATH] [--keep_dir=DIR]
                                  [--png_compression=LEVEL[,LEVEL...]]

What it builds: the full-size colorizer (SPEC.md's 6.7 M parameters, untrained: latency does not
depend on the weights) and Inception-ResNet-v2 (random weights; the same graph as ImageNet's),
exported with trainer.export exactly as users export.

What it prints:
  * compute floor: the SavedModel's own embedder + colorizer functions on one 299 / 224 input
    (p50 of --runs), the reference;
  * in-process: serving_default on the page's PNG bytes (decode, gray, L, letterbox, embedder,
    colorizer, ab upsampling, LAB -> sRGB, PNG): p50 and p95, and p50 / floor (target <= 1.5);
  * REST: the same through `python -m serving.server` on loopback, base64 JSON both ways: p50,
    p95, p50 / floor; and pages/s with 4 concurrent clients.
The floor and the pages are timed in turn, call by call, so that all see the same load on a
shared machine; the ratio is printed as p50 / p50 and as the median of the round-by-round
ratios. --png_compression exports one model per zlib level (default: the export's default) and
measures each in the same rounds.
The page is a real manga page from ../shared/data/manga scaled to A4 when that folder exists
(read in place, never copied), else a generated page with line art, screentone and text.
"""
from __future__ import annotations

import argparse
import base64
import concurrent.futures
import glob
import io
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from koala import signatures  # noqa: E402

A4_200DPI = (2339, 1654)
SHARED_MANGA = os.path.join(ROOT, "..", "shared", "data", "manga")


def a4_page(path: str | None) -> tuple[bytes, str]:
  from PIL import Image, ImageDraw
  candidates = [path] if path else sorted(glob.glob(os.path.join(SHARED_MANGA, "**", "*.*"),
                                                    recursive=True))
  candidates = [c for c in candidates if c.lower().endswith((".png", ".jpg", ".jpeg", ".webp"))]
  if candidates:
    src = candidates[0]
    img = Image.open(src).convert("L").resize(A4_200DPI[::-1], Image.LANCZOS)
    what = f"{os.path.relpath(src, ROOT)} scaled to A4"
  else:
    h, w = A4_200DPI
    yy, xx = np.mgrid[0:h, 0:w]
    tone = ((xx + yy) % 6 < 2) * 90 + 160            # screentone
    img = Image.fromarray(np.where((yy // 300 + xx // 400) % 2 == 0, 255, tone).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for i in range(40):
      d.line([(i * 40, 0), (w - i * 30, h)], fill=0, width=3)
      d.text((100 + i * 30, 80 + i * 55), "KOALA " * 5, fill=0)
    what = "generated page (../shared/data/manga not found)"
  buf = io.BytesIO()
  img.save(buf, "PNG")
  return buf.getvalue(), what


def export_full_size(work: str, png_compression: int | None = None,
                     composition: str = "keep_l") -> str:
  """The SPEC-size export (random weights) under work/models/, made once per PNG level and
  composition and kept between runs with --keep_dir; the export's default level unless
  `png_compression` is given. composition "manga" exports it as a manga job (its table and its
  line-aware upsampling: the full-resolution composition)."""
  from koala import embedder as embedder_lib
  from koala import manga
  from trainer import artifacts, export, model as model_lib
  if png_compression is None:
    png_compression = export.DEFAULT_PNG_COMPRESSION
  job = os.path.join(work, f"job_{composition}")
  if not os.path.exists(artifacts.model_dir(job)):
    emb = embedder_lib.load_embedder("inception_resnet_v2", "random", 0)
    model = model_lib.build_colorizer()
    model.compile(optimizer="adam", loss="mse")
    artifacts.save_trained(model, {"name": "inception_resnet_v2", "weights": "random",
                                   "identity": emb.identity, "random_weights": True,
                                   "embedder_seed": 0}, artifacts.model_dir(job),
                          rendering="gray" if composition == "keep_l" else manga.RENDERING_NAME)
  base = os.path.join(work, "models", f"koala_{composition}_png{png_compression}")
  if not os.path.exists(os.path.join(base, "1", "saved_model.pb")):
    t = time.time()
    export.export(job, base, 1, png_compression=png_compression)
    print(f"export (png_compression={png_compression}): {time.time() - t:.0f} s")
  return base


def timings(fn, runs: int, warmup: int = 2) -> np.ndarray:
  for _ in range(warmup):
    fn()
  out = []
  for _ in range(runs):
    t = time.perf_counter()
    fn()
    out.append(time.perf_counter() - t)
  return np.asarray(out)


def interleaved_timings(fns: dict, runs: int, warmup: int = 2) -> dict:
  """Each function timed in turn, call by call, `runs` rounds: all see the same load."""
  for _ in range(warmup):
    for fn in fns.values():
      fn()
  out = {name: [] for name in fns}
  for _ in range(runs):
    for name, fn in fns.items():
      t = time.perf_counter()
      fn()
      out[name].append(time.perf_counter() - t)
  return {name: np.asarray(v) for name, v in out.items()}


def ratio_text(page: np.ndarray, floor: np.ndarray) -> str:
  """p50 / p50, and the median of the round-by-round ratios (steadier under a changing load)."""
  return (f"ratio {np.median(page) / np.median(floor):.2f} (p50/p50), "
          f"{np.median(page / floor):.2f} (median of paired ratios)")


def stage_timings(page: bytes, runs: int, levels: list[int]) -> dict:
  """The page-sized steps of the graph, each alone: where the time beyond the floor goes."""
  import tensorflow as tf
  from serving import tf_page
  data = tf.constant(page)
  gray = tf.function(lambda d: tf_page.decode_gray(d, 10**9))(data)
  from koala import colour
  table = tf.constant(tf_page.lab_rgb_table())
  manga_table = tf.constant(tf_page.lab_rgb_table(colour.COMPOSE_MANGA))
  ab = tf.random.uniform((224, 224, 2), -30, 30)
  rgb = tf_page.colour_page(gray, ab, table)
  steps = {
      "decode+gray": tf.function(lambda d: tf_page.decode_gray(d, 10**9)),
      "letterbox 224+299": tf.function(lambda g: tf_page.model_inputs(g, 224, 299)),
      "ab upsample+LAB->sRGB": tf.function(lambda g, a: tf_page.colour_page(g, a, table)),
      # a manga job's full-resolution composition: the same gather from its own table
      "ab line-aware upsample+manga composition": tf.function(
          lambda g, a: tf_page.colour_page(g, a, manga_table, line_aware=True)),
  }
  args = {"decode+gray": (data,), "letterbox 224+299": (gray,),
          "ab upsample+LAB->sRGB": (gray, ab),
          "ab line-aware upsample+manga composition": (gray, ab)}
  for level in levels:
    steps[f"PNG encode (zlib {level})"] = tf.function(
        lambda x, level=level: tf.io.encode_png(x, compression=level))
    args[f"PNG encode (zlib {level})"] = (rgb,)
  return {k: timings(lambda k=k: [t.numpy() for t in tf.nest.flatten(steps[k](*args[k]))], runs)
          for k in steps}


def rest_timings(base: str, page: bytes, floor_fn, runs: int) -> dict:
  """The page through the stand-in REST server, paired with the floor; and 4 concurrent clients."""
  import requests
  from tests import serving_support as support
  server = support.Server(base, "koala")
  try:
    body = {"instances": [{"b64": base64.b64encode(page).decode()}]}
    url = server.url + "/v1/models/koala:predict"
    session = requests.Session()

    def rest():
      r = session.post(url, json=body, timeout=300)
      assert r.status_code == 200, r.text[:300]
    t = interleaved_timings({"floor": floor_fn, "rest": rest}, runs)
    over_rest, floor = t["rest"], t["floor"]
    n = 4 * max(2, runs // 4)

    def worker(_):
      with requests.Session() as s:
        assert s.post(url, json=body, timeout=300).status_code == 200
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      list(pool.map(worker, range(n)))
    return {"rest": over_rest, "floor": floor, "pages_per_s": n / (time.perf_counter() - t),
            "n": n}
  finally:
    server.stop()


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--runs", type=int, default=15)
  p.add_argument("--page", default=None)
  p.add_argument("--keep_dir", default=None, help="reuse/keep the exports here")
  p.add_argument("--png_compression", default=None,
                 help="zlib levels to export and measure, comma-separated (default: the export's)")
  p.add_argument("--compositions", default="keep_l",
                 help="keep_l (a gray job), manga (a manga job: its table and line-aware "
                      "upsampling), or both comma-separated, measured in the same rounds; "
                      "with several, only the first zlib level")
  args = p.parse_args(argv)
  import tensorflow as tf
  from trainer import export

  levels = ([int(v) for v in args.png_compression.split(",")] if args.png_compression
            else [export.DEFAULT_PNG_COMPRESSION])
  compositions = args.compositions.split(",")
  if len(compositions) > 1:
    levels = levels[:1]
  work = args.keep_dir or tempfile.mkdtemp(prefix="koala-bench-")
  p50 = lambda a: float(np.percentile(a, 50))
  p95 = lambda a: float(np.percentile(a, 95))
  try:
    # one export per (zlib level, composition); the keys stay the zlib level for a gray job
    bases = {(level if c == "keep_l" else f"{level} {c}"): export_full_size(work, level, c)
             for level in levels for c in compositions}
    levels = list(bases)
    page, what = a4_page(args.page)
    print(f"page: {what}, {len(page) / 1e6:.1f} MB PNG")
    loaded = {level: tf.saved_model.load(os.path.join(base, "1")) for level, base in bases.items()}
    first = loaded[levels[0]]
    x299 = tf.random.uniform((1, 299, 299, 3))
    l224 = tf.random.uniform((1, 224, 224, 1), 0, 100)
    emb = first.embed_fn(x299)
    floor_embed = timings(lambda: first.embed_fn(x299).numpy(), args.runs)
    floor_colour = timings(lambda: first.colorize_fn(l224, emb)["ab"].numpy(), args.runs)
    floor_fn = lambda: first.colorize_fn(l224, first.embed_fn(x299))["ab"].numpy()
    batch = tf.constant([page])
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"TF {tf.__version__}, runs={args.runs}, date {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"compute floor alone: embedder {p50(floor_embed):.3f} s + colorizer "
          f"{p50(floor_colour):.3f} s")
    fns = {"floor": floor_fn}
    for level in levels:
      serve = loaded[level].signatures[signatures.SERVING_DEFAULT]
      size = len(serve(image_bytes=batch)[signatures.PNG_BYTES].numpy()[0])
      fns[level] = lambda serve=serve: serve(image_bytes=batch)[signatures.PNG_BYTES].numpy()
      print(f"[zlib {level}] output {size / 1e6:.1f} MB")
    t = interleaved_timings(fns, args.runs)
    print(f"compute floor (reference, interleaved with the pages): p50 {p50(t['floor']):.3f} s")
    for level in levels:
      target = 2.0 if "manga" in str(level) else 1.5   # a manga job's full-resolution fill
      print(f"[zlib {level}] in-process page: p50 {p50(t[level]):.3f} s, "
            f"p95 {p95(t[level]):.3f} s; {ratio_text(t[level], t['floor'])} (target <= {target})")
    stages = stage_timings(page, args.runs, sorted({int(str(l).split()[0]) for l in levels}))
    print("in-process stages alone (p50): " + ", ".join(f"{k} {p50(v):.3f} s"
                                                    for k, v in stages.items()))
    for level in levels:
      r = rest_timings(bases[level], page, floor_fn, args.runs)
      print(f"[zlib {level}] REST page: p50 {p50(r['rest']):.3f} s, p95 {p95(r['rest']):.3f} s; "
            f"floor p50 {p50(r['floor']):.3f} s; {ratio_text(r['rest'], r['floor'])}; "
            f"4 concurrent clients: {r['pages_per_s']:.2f} pages/s ({r['n']} pages)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
  finally:
    if not args.keep_dir:
      shutil.rmtree(work, ignore_errors=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
