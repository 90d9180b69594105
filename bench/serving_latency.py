"""Serving latency of one A4 page (1654 x 2339, 200 dpi): in-process and through the REST
server, against the model compute alone, all measured in the same run.

  python bench/serving_latency.py [--runs=15] [--page=PATH] [--keep_dir=DIR]
                                  [--png_compression=LEVEL[,LEVEL...]]

What it builds: the full-size colorizer (docs/SPEC.md's 6.7 M parameters, untrained: latency does
not depend on the weights) and Inception-ResNet-v2 (random weights; the same graph as ImageNet's),
exported with trainer.export exactly as users export.

What it prints:
  * compute floor: the SavedModel's own embedder + colorizer functions on one 299 / 224 input
    (p50 of --runs), the reference;
  * in-process: serving_default on the page's PNG bytes (decode, gray, L, letterbox, embedder,
    colorizer, ab upsampling, LAB -> sRGB, PNG): p50 and p95, and p50 / floor (target <= 1.5);
  * REST: the same through `python -m serving.server` on loopback, base64 JSON both ways: p50,
    p95, p50 / floor; and pages/s with 4 concurrent clients.
  * with --compositions=...,manga, a manga job (its colorizer the guided one) also through
    colorize_guided: 10 dots as the Streamlit page sends them (a 448-px hint image; target
    <= 2 x the floor of the guided network), and hostile hint images: every pixel opaque in
    random colours (448 px as the page sends, and page-sized: the worst a client can send under
    the pixel cap) and 500 dots with 50 of them in one region (target <= 3 x); and
    the fill's own time (trainer.export.fill alone) for each.
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
from trainer.export import signatures  # noqa: E402
from trainer.model import AB_OUTPUT  # noqa: E402

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
  `png_compression` is given. composition "manga" exports the guided colorizer as a manga job
  (trainer.export.fill's composition, and colorize_guided with its region fill)."""
  from koala import embedder as embedder_lib
  from koala import manga
  from trainer import artifacts, model as model_lib
  from trainer.export import build as export
  if png_compression is None:
    png_compression = export.DEFAULT_PNG_COMPRESSION
  job = os.path.join(work, f"job_{composition}")
  if not os.path.exists(artifacts.model_dir(job)):
    emb = embedder_lib.load_embedder("inception_resnet_v2", "random", 0)
    model = (model_lib.build_colorizer() if composition == "keep_l"
             else model_lib.build_guided_colorizer())
    model.compile(optimizer="adam", loss="mse")
    embedder = embedder_lib.EmbedderInfo.for_flags("inception_resnet_v2", "random", 0,
                                                   emb.identity)
    rendering = "gray" if composition == "keep_l" else manga.RENDERING_NAME
    artifacts.save_trained(model, artifacts.TrainedModelInfo(embedder, rendering),
                           artifacts.model_dir(job))
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


def hint_images(page: bytes) -> dict:
  """The hint images a manga page is timed with: name -> PNG bytes."""
  import cv2
  import tensorflow as tf
  from bench import manga_regions
  from serving import hint_dots
  from trainer.export import page as tf_page
  gray = tf_page.decode_gray(tf.constant(page), 10 ** 9).numpy()
  rng = np.random.default_rng(0)
  colours = [tuple(int(v) for v in c) for c in rng.integers(0, 256, (500, 3))]
  found = manga_regions.paper_regions(gray, 10)
  ten = [hint_dots.Dot(int(x), int(y), colours[i]) for i, (_, (y, x)) in enumerate(found)]
  region = found[0][0]
  ys, xs = np.nonzero(region)
  pick = rng.choice(len(ys), 50, replace=False)
  many = [hint_dots.Dot(int(xs[k]), int(ys[k]), colours[i]) for i, k in enumerate(pick)]
  many += [hint_dots.Dot(int(x), int(y), colours[50 + i]) for i, (y, x) in enumerate(
      zip(rng.integers(0, gray.shape[0], 450), rng.integers(0, gray.shape[1], 450)))]
  opaque = rng.integers(0, 256, gray.shape + (4,)).astype(np.uint8)
  opaque[..., 3] = 255
  side = hint_dots.HINT_SIDE / max(gray.shape)                  # what the Streamlit page sends
  small = cv2.resize(opaque, (round(gray.shape[1] * side), round(gray.shape[0] * side)),
                     interpolation=cv2.INTER_NEAREST)
  return {f"{len(ten)} dots": hint_dots.hint_png(*gray.shape, ten),
          "500 dots, 50 in one region": hint_dots.hint_png(*gray.shape, many),
          "every pixel opaque (448 px, noise)": cv2.imencode(".png", small)[1].tobytes(),
          "every pixel opaque (page-sized, noise)": cv2.imencode(".png", opaque)[1].tobytes()}


def stage_timings(page: bytes, runs: int, levels: list[int], hints: dict | None) -> dict:
  """The page-sized steps of the graph, each alone: where the time beyond the floor goes."""
  import tensorflow as tf
  from koala import colour
  from trainer.export import fill as tf_fill, guidance as tf_guidance, page as tf_page
  data = tf.constant(page)
  gray = tf.function(lambda d: tf_page.decode_gray(d, 10**9))(data)
  table = tf.constant(tf_page.lab_rgb_table())
  flats = tf.constant(colour.paper_colour_table())
  box = tf_page.ab_box(gray, tf.random.uniform((224, 224, 2), -30, 30))
  rgb = tf_page.colour_page(gray, box, table)
  steps = {
      "decode+gray": (tf.function(lambda d: tf_page.decode_gray(d, 10**9)), (data,)),
      "letterbox 224+299": (tf.function(lambda g: tf_page.model_inputs(g, 224, 299)), (gray,)),
      "ab upsample+LAB->sRGB": (tf.function(lambda g, a: tf_page.colour_page(g, a, table)),
                                (gray, box)),
      "manga composition, no dots": (tf.function(
          lambda g, a: tf_fill.manga_colour_page(g, a, flats)), (gray, box)),
  }
  for name, png in (hints or {}).items():
    rgba = tf_guidance.hint_image(tf.constant(png), 10 ** 9)
    steps[f"manga composition, {name}"] = (tf.function(
        lambda g, a, h: tf_fill.manga_colour_page(g, a, flats, h)), (gray, box, rgba))
  for level in levels:
    steps[f"PNG encode (zlib {level})"] = (tf.function(
        lambda x, level=level: tf.io.encode_png(x, compression=level)), (rgb,))
  return {k: timings(lambda f=f, a=a: [t.numpy() for t in tf.nest.flatten(f(*a))], runs)
          for k, (f, a) in steps.items()}


def guided_timings(model, page: bytes, hints: dict, runs: int) -> dict:
  """colorize_guided of a manga export with each hint image, interleaved with its own floor
  (the embedder and the guided network on one input)."""
  import tensorflow as tf
  from koala import guidance
  guided = model.signatures[signatures.COLORIZE_GUIDED]
  x299 = tf.random.uniform((1, 299, 299, 3))
  l224 = tf.random.uniform((1, 224, 224, 1), 0, 100)
  planes = tf.zeros((1, 224, 224, guidance.HINT_CHANNELS))
  palette = tf.constant(guidance.NO_PALETTE)[None]
  batch, none = tf.constant([page]), tf.constant([b""])
  fns = {"floor": lambda: model.guided_fn(l224, model.embed_fn(x299), planes, palette)[
      AB_OUTPUT].numpy()}
  for name, png in {"no dots": b"", **hints}.items():
    fns[name] = lambda h=tf.constant([png]): guided(
        image_bytes=batch, hints_bytes=h, reference_bytes=none)[signatures.PNG_BYTES].numpy()
  return interleaved_timings(fns, runs)


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
                 help="keep_l (a gray job), manga (a guided manga job: its composition and "
                      "region fill), or both comma-separated, measured in the same rounds; "
                      "with several, only the first zlib level")
  args = p.parse_args(argv)
  import tensorflow as tf
  from trainer.export import build as export

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
    floor_colour = timings(lambda: first.colorize_fn(l224, emb)[AB_OUTPUT].numpy(), args.runs)
    floor_fn = lambda: first.colorize_fn(l224, first.embed_fn(x299))[AB_OUTPUT].numpy()
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
      target = 2.0 if "manga" in str(level) else 1.5   # a manga job's full-resolution composition
      print(f"[zlib {level}] in-process page: p50 {p50(t[level]):.3f} s, "
            f"p95 {p95(t[level]):.3f} s; {ratio_text(t[level], t['floor'])} (target <= {target})")
    manga = [level for level in levels if "manga" in str(level)]
    hints = hint_images(page) if manga else None
    for level in manga:
      g = guided_timings(loaded[level], page, hints, args.runs)
      print(f"[zlib {level}] colorize_guided, floor (embedder + guided network) p50 "
            f"{p50(g['floor']):.3f} s")
      for name in g:
        if name != "floor":
          target = 2.0 if "dots" in name and "500" not in name else 3.0
          print(f"  {name}: p50 {p50(g[name]):.3f} s; {ratio_text(g[name], g['floor'])} "
                f"(target <= {target:g})")
    stages = stage_timings(page, args.runs, sorted({int(str(l).split()[0]) for l in levels}),
                           hints)
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
