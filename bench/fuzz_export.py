"""Fuzzing the whole export: mutated PNG, JPEG, GIF (oversized frames included), WebP and BMP
files as the page, the hint image and the reference of `colorize_guided` (issue 19).

  python bench/fuzz_export.py [--count=100000] [--per_process=2000] [--max_pixels=250000]
                              [--seed=0] [--keep_dir=DIR]
  python bench/fuzz_export.py --memory [--max_pixels=50000000] [--keep_dir=DIR]

What it builds: the guided export of tests/serving_support.py (the guided colorizer, narrow, at
56 x 56, with a tiny embedder; untrained: which colours come out does not matter, every op of
the served page path does run), exported with a low --max_pixels, so that a mutant which grows a
header is refused or decoded small, and most inputs cost milliseconds.

What it runs: --count inputs in batches of --per_process, each batch in its own subprocess that
loads the SavedModel once and calls colorize_guided once per input. Input i is a mutant of one
of the corpus files (`corpus_files`: small pages of every format, a JPEG stored sideways, an
animated GIF, GIFs with oversized frames) in the role i % 3: the page, the hint image or the
reference, with clean files in the other two roles. A mutant has 1 to 4 edits: a byte set to a
telling value, a bit flipped, a 16- or 32-bit field overwritten, the file cut, bytes inserted, a
span repeated, or the tail of another corpus file spliced on; half of them fall in the first 64 bytes,
where the headers are; most PNG mutants get their chunks' CRCs made right again. Inputs are a function of (--seed, i), so any one can be made again.

What it prints:
  * crashes: a subprocess that dies (a signal, or an exit without its summary); the input it
    was running is saved under DIR/crashes and the batch goes on from the next input;
  * outputs over the cap: an answered PNG whose width x height exceeds --max_pixels (saved under
    DIR/over_cap); the target for both is 0 in 100,000;
  * errors other than InvalidArgument (what REST would answer 500 rather than 400), by type;
  * answered and refused, per corpus format and role;
  * peak memory: each batch's peak RSS above its RSS once the model is loaded and warm (VmHWM,
    reset after warming up), the worst batch against a batch of the clean corpus files in every role,
    measured in the same run.
--memory prints the issue's memory target instead: the peak RSS of the in-process export (what
REST and the batch job run) and of the pipeline's decode (`koala.images.decode_image`) on a
clean A4 page, against small inputs that try to cost more (the GIF bombs; a blank page just under
the cap, the costliest honest file under 1 MB), each in its own subprocess, with --max_pixels
(there, the export's default unless given).
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import machine  # noqa: E402

ROLES = ("image_bytes", "hints_bytes", "reference_bytes")
TELLING = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x21, 0x2C, 0x3B, 0xE1, 0x12]
FIELDS = [0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x1F40, 0x7FFFFFFF, 0xFFFFFFFF]


# --- the inputs --------------------------------------------------------------------------------

def corpus_files() -> dict[str, bytes]:
  """Small files of every format the export decodes, and the GIFs of issue 19."""
  from PIL import Image
  from tests import corpus
  rng = np.random.default_rng(0)
  scene = corpus.colour_scene(1, 40, 56)
  gray = np.asarray(Image.fromarray(scene).convert("L"))

  def save(img, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()

  rgba = np.zeros((30, 40, 4), np.uint8)
  rgba[5:12, 8:15] = (220, 30, 30, 255)
  frames = [Image.fromarray(corpus.colour_scene(s, 30, 40)).quantize(16) for s in (2, 3)]
  return {
      "png": save(Image.fromarray(gray), "PNG"),
      "png_rgba": save(Image.fromarray(rgba), "PNG"),
      "apng": save(Image.fromarray(scene), "PNG", save_all=True,
                   append_images=[Image.fromarray(scene[::-1])]),
      "jpeg": save(Image.fromarray(scene), "JPEG", quality=90),
      "jpeg_progressive": save(Image.fromarray(gray), "JPEG", quality=80, progressive=True),
      "jpeg_exif": corpus.oriented_jpeg(scene, 6, ">"),
      "gif": save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50),
      "gif_large_first": corpus.blank_gif((10, 10), [(2000, 2000, 0, 0)]),
      "gif_large_second": corpus.blank_gif((10, 10), [(10, 10, 0, 0), (2000, 2000, 0, 0)]),
      "gif_many_frames": corpus.blank_gif((100, 100), [(100, 100, 0, 0)] * 30),
      "webp": save(Image.fromarray(scene), "WEBP", quality=70),
      "webp_lossless": save(Image.fromarray(scene), "WEBP", lossless=True),
      "webp_alpha": save(Image.fromarray(np.dstack([scene, rng.integers(0, 256, (40, 56),
                                                                        np.uint8)])),
                         "WEBP", quality=70),
      "bmp": save(Image.fromarray(scene), "BMP"),
      "bmp_palette": save(frames[0], "BMP"),
  }


def mutate(data: bytes, rng: np.random.Generator, others: list[bytes]) -> bytes:
  out = bytearray(data)
  for _ in range(rng.integers(1, 5)):
    if not out:
      break
    head = rng.random() < 0.5
    at = int(rng.integers(0, min(len(out), 64) if head else len(out)))
    kind = rng.integers(0, 7)
    if kind == 0:
      out[at] = TELLING[rng.integers(len(TELLING))]
    elif kind == 1:
      out[at] ^= 1 << int(rng.integers(8))
    elif kind == 2:
      size = 2 if rng.random() < 0.6 else 4
      value = FIELDS[rng.integers(len(FIELDS))] & (256 ** size - 1)
      out[at:at + size] = value.to_bytes(size, "little" if rng.random() < 0.5 else "big")
    elif kind == 3:
      del out[at + 1:]
    elif kind == 4:
      out[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8))
    elif kind == 5:
      span = out[at:at + int(rng.integers(1, 64))]
      out[at:at] = span * int(rng.integers(1, 8))
    else:
      other = others[rng.integers(len(others))]
      out[at:] = other[int(rng.integers(len(other))):]
  return bytes(out)


def fix_png_crcs(data: bytes) -> bytes:
  """Each whole chunk's CRC made right again, so a mutated PNG reaches libpng's decoder instead
  of its checksum test."""
  out, pos = bytearray(data), 8
  while pos + 12 <= len(out):
    size = struct.unpack(">I", out[pos:pos + 4])[0]
    if pos + 12 + size > len(out):
      break
    out[pos + 8 + size:pos + 12 + size] = struct.pack(">I", zlib.crc32(out[pos + 4:pos + 8 + size]))
    pos += 12 + size
  return bytes(out)


def make_input(seed: int, i: int, corpus: dict[str, bytes]) -> tuple[str, str, dict]:
  """Input i: (the original project's name, the role, the three byte strings)."""
  rng = np.random.default_rng([seed, i])
  names = sorted(corpus)
  name = names[rng.integers(len(names))]
  role = ROLES[i % 3]
  feed = {"image_bytes": corpus["png"], "hints_bytes": corpus["png_rgba"],
          "reference_bytes": corpus["jpeg"]}
  mutant = mutate(corpus[name], rng, [corpus[n] for n in names])
  if mutant.startswith(b"\x89PNG") and rng.random() < 0.75:
    mutant = fix_png_crcs(mutant)
  feed[role] = mutant
  return name, role, feed


def clean_input(i: int, corpus: dict[str, bytes]) -> tuple[str, str, dict]:
  """The reference batch's input i: corpus file i // 3 unmutated, in role i % 3 (the GIF bombs are left
  out: refused, they cost nothing)."""
  names = [n for n in sorted(corpus) if not n.startswith("gif_")]
  name, role = names[(i // 3) % len(names)], ROLES[i % 3]
  feed = {"image_bytes": corpus["png"], "hints_bytes": corpus["png_rgba"],
          "reference_bytes": corpus["jpeg"]}
  feed[role] = corpus[name]
  return name, role, feed


# --- one batch, in a subprocess ----------------------------------------------------------------

def status_kib(field: str) -> int:
  with open("/proc/self/status") as f:
    return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def reset_peak() -> None:
  """Resets VmHWM to the current RSS (Linux: clear_refs 5), so the peak counts the batch only."""
  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")


def png_pixels(png: bytes) -> int:
  width, height = struct.unpack(">II", png[16:24])
  return width * height


def run_batch(args) -> None:
  """The worker: prints '> i' before input i and '= i file role outcome' after it, then one JSON
  line with its memory."""
  import tensorflow as tf
  from serving import exports
  from trainer.export import signatures
  fn = exports.load_model(args.export).signatures[signatures.COLORIZE_GUIDED]
  corpus = corpus_files()
  call = lambda feed: fn(**{k: tf.constant([v]) for k, v in feed.items()})[
      signatures.PNG_BYTES][0].numpy()
  for i in range(6):
    call(clean_input(i, corpus)[2])
  reset_peak()
  loaded = status_kib("VmRSS")
  for i in range(args.first, args.first + args.n):
    name, role, feed = clean_input(i, corpus) if args.clean else make_input(args.seed, i, corpus)
    print(f"> {i}", flush=True)
    try:
      png = call(feed)
      outcome = "over_cap" if png_pixels(png) > args.max_pixels else "answered"
    except tf.errors.InvalidArgumentError:
      outcome = "refused"
    except Exception as e:   # a 500 over REST, not a 400: reported by type
      outcome = f"error:{type(e).__name__}"
    print(f"= {i} {name} {role} {outcome}", flush=True)
  print(json.dumps({"loaded_kib": loaded, "peak_kib": status_kib("VmHWM")}), flush=True)


def spawn_batch(args, export: str, first: int, n: int, clean: bool = False):
  """-> (results {i: (file, role, outcome)}, memory dict or None, (the input that crashed or
  hung, how) or None, the next input to run)."""
  cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"--export={export}",
         f"--seed={args.seed}", f"--first={first}", f"--n={n}", f"--max_pixels={args.max_pixels}"]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
  try:
    run = subprocess.run(cmd + (["--clean"] if clean else []), capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120 + 2 * n)
    stdout, how = run.stdout, f"exit {run.returncode}: {run.stderr[-300:]}"
  except subprocess.TimeoutExpired as e:   # a hang counts as a crash
    run, stdout, how = None, (e.stdout or b"").decode(), f"no answer in {e.timeout} s"
  results, memory, started = {}, None, None
  for line in stdout.splitlines():
    if line.startswith("> "):
      started = int(line[2:])
    elif line.startswith("= "):
      i, name, role, outcome = line[2:].split()
      results[int(i)] = (name, role, outcome)
    elif line.startswith("{"):
      memory = json.loads(line)
  if memory is not None and run is not None and run.returncode == 0:
    return results, memory, None, first + n
  if started is None or started in results:
    sys.exit(f"the worker failed outside an input ({how})")
  return results, memory, (started, how), started + 1


# --- the export ----------------------------------------------------------------------------------

def export_guided(work: str, max_pixels: int) -> str:
  """<work>/models/guided_<cap>: the tests' guided model exported with the given cap, made anew
  each run (an export carries the graph of the code that made it)."""
  from tests import serving_support
  from trainer.export import build as export
  base = os.path.join(work, "models", f"guided_{max_pixels}")
  shutil.rmtree(base, ignore_errors=True)
  export.export(serving_support.untrained_job(True), base, 1, max_pixels=max_pixels)
  return base


def fuzz(args, work: str) -> int:
  export = export_guided(work, args.max_pixels)
  for folder in ("crashes", "over_cap"):
    os.makedirs(os.path.join(work, folder), exist_ok=True)
  corpus = corpus_files()
  started = time.time()
  clean, clean_memory, crash, _ = spawn_batch(args, export, 0, min(args.per_process, args.count),
                                              clean=True)
  assert crash is None and all(o == "answered" for _, _, o in clean.values()), clean
  results, peaks, crashes, over_cap = {}, [], [], []
  i = 0
  while i < args.count:
    n = min(args.per_process, args.count - i)
    got, memory, crash, i = spawn_batch(args, export, i, n)
    results.update(got)
    if memory:
      peaks.append(memory)
    if crash:
      index, how = crash
      crashes.append(index)
      with open(os.path.join(work, "crashes", f"{index}.bin"), "wb") as f:
        f.write(make_input(args.seed, index, corpus)[2][ROLES[index % 3]])
      print(f"CRASH at input {index}: {how}", flush=True)
    elapsed = time.time() - started
    print(f"{len(results) + len(crashes)} / {args.count} inputs, {elapsed:.0f} s", flush=True)
  for index, (name, role, outcome) in results.items():
    if outcome == "over_cap":
      over_cap.append(index)
      with open(os.path.join(work, "over_cap", f"{index}.bin"), "wb") as f:
        f.write(make_input(args.seed, index, corpus)[2][role])
  report(args, results, crashes, over_cap, peaks, clean_memory, time.time() - started)
  return 1 if crashes or over_cap else 0


def report(args, results, crashes, over_cap, peaks, clean_memory, seconds) -> None:
  table = collections.Counter((name, role, outcome) for name, role, outcome in results.values())
  errors = collections.Counter(o for _, _, o in results.values() if o.startswith("error:"))
  above = lambda m: (m["peak_kib"] - m["loaded_kib"]) / 1024
  clean_peak, worst = above(clean_memory), max(map(above, peaks), default=float("nan"))
  whole = max((m["peak_kib"] / 1024 for m in peaks), default=float("nan"))
  print(f"\nmachine: {machine()}; {time.strftime('%Y-%m-%d %H:%M')}; "
        f"load average {os.getloadavg()[0]:.1f}")
  print(f"inputs: {len(results) + len(crashes)} in {seconds:.0f} s "
        f"({(len(results) + len(crashes)) / seconds:.1f} inputs/s), --max_pixels={args.max_pixels}"
        f", {args.per_process} per subprocess, seed {args.seed}")
  print(f"crashes (a subprocess died): {len(crashes)}  {crashes[:10]}")
  print(f"outputs over the cap: {len(over_cap)}  {over_cap[:10]}")
  print(f"errors other than InvalidArgument: {sum(errors.values())}  {dict(errors)}")
  print(f"peak RSS above the warm model: clean batch {clean_peak:.1f} MiB; fuzz batches: "
        f"median {np.median(list(map(above, peaks))):.1f}, worst {worst:.1f} MiB "
        f"({worst / max(clean_peak, 0.1):.2f} x the clean batch's)")
  print(f"peak RSS of the whole process: clean batch {clean_memory['peak_kib'] / 1024:.0f} MiB, "
        f"worst fuzz batch {whole:.0f} MiB ({whole / (clean_memory['peak_kib'] / 1024):.2f} x)")
  print("\ncorpus file, role: answered / refused")
  for name in sorted({k[0] for k in table}):
    cells = [f"{table[(name, r, 'answered')]:5d} / {table[(name, r, 'refused')]:5d}" for r in ROLES]
    print(f"  {name:18s} " + "   ".join(f"{r.split('_')[0]} {c}" for r, c in zip(ROLES, cells)))


# --- the memory target ---------------------------------------------------------------------------

def memory_cases(page: bytes, max_pixels: int) -> dict[str, bytes]:
  from PIL import Image
  from tests import corpus
  side = int(max_pixels ** 0.5) - 1
  blank = io.BytesIO()
  Image.new("L", (side, side), 255).save(blank, "PNG", optimize=True)
  return {
      "clean A4 page (reference)": page,
      "GIF: 10 x 10 screen, 8000 x 8000 first frame": corpus.blank_gif((10, 10),
                                                                       [(8000, 8000, 0, 0)]),
      "GIF: 10 x 10 screen, 8000 x 8000 second frame": corpus.blank_gif(
          (10, 10), [(10, 10, 0, 0), (8000, 8000, 0, 0)]),
      "GIF: 200 frames of 1000 x 1000 (screen 1 Mpx)": corpus.blank_gif(
          (1000, 1000), [(1000, 1000, 0, 0)] * 200),
      f"blank PNG {side} x {side} (just under the cap)": blank.getvalue(),
      "GIF: 1 MB of one-byte blocks (the frame walk's costliest file)": tiny_blocks_gif(),
  }


def tiny_blocks_gif(size: int = 1 << 20) -> bytes:
  """A 100 x 100 GIF whose image data comes in one-byte sub-blocks, followed by one-byte comment
  extensions up to `size` bytes: the most blocks a file of that size can hold."""
  from tests import corpus
  gif = corpus.blank_gif((100, 100), [(100, 100, 0, 0)])
  start = gif.index(b"\x2c") + 11                      # the frame's first sub-block
  data, pos = b"", start
  while gif[pos]:
    data += gif[pos + 1:pos + 1 + gif[pos]]
    pos += 1 + gif[pos]
  body = gif[:start] + b"".join(b"\x01" + bytes([c]) for c in data) + b"\x00"
  comments = (size - len(body)) // 5
  return body + b"\x21\xfe\x01x\x00" * comments + b";"


def measure_one(args) -> None:
  """The --memory worker: one case through one entry point; prints a JSON line."""
  with open(args.case, "rb") as f:
    data = f.read()
  outcome = "answered"
  if args.entry == "export":
    import tensorflow as tf
    from serving import exports
    from trainer.export import signatures
    fn = exports.load_model(args.export).signatures[signatures.COLORIZE_GUIDED]
    feed = lambda d: {"image_bytes": tf.constant([d]), "hints_bytes": tf.constant([b""]),
                      "reference_bytes": tf.constant([b""])}
    with open(args.warm, "rb") as f:
      fn(**feed(f.read()))
    reset_peak()
    loaded = status_kib("VmRSS")
    started = time.perf_counter()
    try:
      fn(**feed(data))
    except tf.errors.InvalidArgumentError:
      outcome = "refused"
  else:
    from koala import images
    images.decode_image(images.encode_png(np.full((64, 64, 3), 255, np.uint8)))
    reset_peak()
    loaded = status_kib("VmRSS")
    started = time.perf_counter()
    try:
      images.decode_image(data)
    except images.ImageError:
      outcome = "refused"
  print(json.dumps({"peak_mib": (status_kib("VmHWM") - loaded) / 1024, "outcome": outcome,
                    "seconds": time.perf_counter() - started}))


def memory(args, work: str) -> int:
  from bench.serving_latency import a4_page
  from koala import images
  cap = args.max_pixels or images.DEFAULT_MAX_PIXELS
  export = export_guided(work, cap)
  page, what = a4_page(None)
  warm = os.path.join(work, "warm.png")
  with open(warm, "wb") as f:
    f.write(images.encode_png(np.full((64, 48, 3), 200, np.uint8)))
  print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M')}; the page: {what}; "
        f"--max_pixels={cap}")
  print("peak RSS above the warm process, MiB, and x the clean A4 page's, per entry point")
  reference = {}
  for name, data in memory_cases(page, cap).items():
    path = os.path.join(work, "case.bin")
    with open(path, "wb") as f:
      f.write(data)
    cells = []
    for entry in ("export", "pipeline_decode"):
      run = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure",
                            f"--entry={entry}", f"--export={export}", f"--case={path}",
                            f"--warm={warm}"], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT})
      if run.returncode != 0:
        cells.append(f"{entry}: died (exit {run.returncode})")
        continue
      got = json.loads(run.stdout.strip().splitlines()[-1])
      reference.setdefault(entry, got["peak_mib"])
      cells.append(f"{entry:15s} {got['peak_mib']:7.1f} MiB {got['peak_mib'] / reference[entry]:6.2f} x"
                   f"  {got['seconds']:6.2f} s  ({got['outcome']})")
    print(f"  {name} [{len(data) / 1024:.0f} KiB]\n      " + "\n      ".join(cells), flush=True)
  return 0


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--count", type=int, default=100_000)
  p.add_argument("--per_process", type=int, default=2000)
  p.add_argument("--max_pixels", type=int, default=None,
                 help="the export's cap (default 250,000 to fuzz, the export's own with --memory)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--keep_dir", default=None, help="keep the export and the saved inputs here")
  p.add_argument("--memory", action="store_true", help="measure the memory target instead")
  # the subprocesses' own flags
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--clean", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--export", help=argparse.SUPPRESS)
  p.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
  p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
  p.add_argument("--entry", help=argparse.SUPPRESS)
  p.add_argument("--case", help=argparse.SUPPRESS)
  p.add_argument("--warm", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.worker:
    run_batch(args)
    return 0
  if args.measure:
    measure_one(args)
    return 0
  if not args.memory and args.max_pixels is None:
    args.max_pixels = 250_000
  work = args.keep_dir or tempfile.mkdtemp(prefix="koala-fuzz-")
  os.makedirs(work, exist_ok=True)
  try:
    return memory(args, work) if args.memory else fuzz(args, work)
  finally:
    if not args.keep_dir:
      shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  sys.exit(main())
