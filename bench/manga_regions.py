"""Does a dot fill its region on real pages? python bench/manga_regions.py --export=DIR

Each black-and-white page of ../shared/data/manga goes through a manga export's
colorize_guided signature in process (tf.saved_model.load), with one dot, as wide as a click
in the Streamlit page (serving.hint_dots.dot_radius), in each of the page's largest bare-paper
regions: speech bubbles, faces, skies. A region is found here by its own rule, not the served
graph's: a 4-connected area of paper (the page as the graph decodes it, gray >= PAPER) between
MIN_REGION page pixels and MAX_REGION_SHARE of the page, not touching the page's edge (margins
and gutters are left out); the dot sits at its deepest point. Dot colours cycle through a list
of saturated, mid-tone and dark flats, and every PAGE_DOTS-th dot is white (a bubble a user
wants kept white).

Reported: per dot, the share of its region's pixels whose output is within CIE76 dE 15 of the
dot's colour (the region's mean share is the headline, target >= 90 %; the share of dots
covering >= 80 % of their region, target >= 80 %), and the share of ink pixels (gray <= 40)
that stay dark (target >= 99 %). Leak through gaps is bench/manga_lineart.py's: on a real page the
guided network also recolours the page around the dots, so a difference against the dotless page
would measure the network as well as the fill. The dotted regions take the dot's colour whatever the
model is, so any manga export measures the fill; the figure is a property of the graph, not of
training. Skips cleanly where ../shared/data is absent.
"""
from __future__ import annotations

import argparse
import glob
import io
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402

PAPER = 230
MIN_REGION = 2000
MAX_REGION_SHARE = 0.25
PAGE_DOTS = 6
COVER_DELTA_E = 15.0
INK_GRAY = 40
FLATS = ((220, 40, 40), (40, 90, 200), (250, 200, 60), (30, 40, 110), (60, 160, 80),
         (240, 170, 140), (120, 60, 30), (200, 120, 220), (90, 200, 230), (150, 30, 60))
WHITE = (255, 255, 255)


def paper_regions(page: np.ndarray, n: int = PAGE_DOTS):
  """-> up to n (region mask, (y, x) deepest point) of the page's largest bare-paper regions."""
  import cv2
  paper = (page >= PAPER).astype(np.uint8)
  count, labels, stats, _ = cv2.connectedComponentsWithStats(paper, connectivity=4)
  h, w = page.shape
  out = []
  for k in np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1:
    x, y, bw, bh, area = stats[k]
    if area < MIN_REGION or len(out) == n:
      break
    if area > MAX_REGION_SHARE * h * w or x == 0 or y == 0 or x + bw == w or y + bh == h:
      continue
    region = labels == k
    depth = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 5)
    out.append((region, np.unravel_index(np.argmax(depth), depth.shape)))
  return out


def run(export_path: str, max_pages: int | None = None, out_dir: str | None = None) -> dict:
  import cv2
  import tensorflow as tf
  from PIL import Image
  from koala import colour
  from serving import exports, hint_dots
  from trainer.export import page as tf_page
  from trainer.export.signatures import COLORIZE_GUIDED
  fn = tf.saved_model.load(exports.resolve_version_dir(export_path)).signatures[COLORIZE_GUIDED]
  files = sorted(f for f in glob.glob(os.path.join(common.shared_data("manga"), "**", "*"),
                                      recursive=True)
                 if f.lower().endswith((".png", ".jpg", ".jpeg", ".webp", ".bmp")))[:max_pages]
  dots, ink_total, ink_dark, seconds = [], 0, 0, []
  for index, path in enumerate(files):
    data = open(path, "rb").read()
    page = tf_page.decode_gray(tf.constant(data), 10 ** 9).numpy()
    found = paper_regions(page)
    hints = np.zeros(page.shape + (4,), np.uint8)
    picks = []
    radius = hint_dots.dot_radius(*page.shape)
    for i, (_, (y, x)) in enumerate(found):
      rgb = WHITE if i == PAGE_DOTS - 1 else FLATS[(index * PAGE_DOTS + i) % len(FLATS)]
      cv2.circle(hints, (int(x), int(y)), radius, (*rgb, 255), -1)
      picks.append(rgb)
    buf = io.BytesIO()
    Image.fromarray(hints, "RGBA").save(buf, format="PNG")
    start = time.perf_counter()
    png = fn(image_bytes=tf.constant([data]), hints_bytes=tf.constant([buf.getvalue()]),
             reference_bytes=tf.constant([b""]))["png_bytes"].numpy()[0]
    seconds.append(time.perf_counter() - start)
    out = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    lab = colour.rgb_to_lab(out)
    for (region, _), rgb in zip(found, picks):
      target = colour.rgb_to_lab(np.array([rgb], np.uint8))[0]
      share = float((np.linalg.norm(lab[region] - target, axis=-1) <= COVER_DELTA_E).mean())
      dots.append({"page": os.path.relpath(path, common.shared_data()), "rgb": list(rgb),
                   "region_pixels": int(region.sum()), "covered": share})
    ink = page <= INK_GRAY
    y_out = colour.relative_luminance(out.astype(np.float32) / 255.0)
    y_page = colour.relative_luminance(np.repeat(page[..., None], 3, -1) / np.float32(255.0))
    ink_total += int(ink.sum())
    ink_dark += int(((y_out <= y_page + 1e-3) & ink).sum())
    if out_dir and index < 6:
      shown = out.copy()
      for (_, (y, x)), rgb in zip(found, picks):
        cv2.circle(shown, (int(x), int(y)), radius + 2, (0, 0, 0), 2)
      Image.fromarray(shown).save(os.path.join(out_dir, f"regions_{index}.png"))
    mine = [d["covered"] for d in dots[-len(found):]] if found else []
    print(f"  {os.path.basename(path)[:60]}: {len(found)} regions, covered "
          f"{' '.join(f'{c:.2f}' for c in mine)}, {seconds[-1]:.2f} s", flush=True)
  covered = np.array([d["covered"] for d in dots])
  white = np.array([d["covered"] for d in dots if tuple(d["rgb"]) == WHITE])
  return {"pages": len(files), "dots": len(dots),
          "mean_region_covered": float(covered.mean()) if len(dots) else None,
          "dots_covering_80": float((covered >= 0.8).mean()) if len(dots) else None,
          "white_dots": len(white),
          "white_dots_kept_white": float((white >= 0.8).mean()) if len(white) else None,
          "ink_dark_share": ink_dark / ink_total if ink_total else None,
          "median_seconds": float(np.median(seconds)) if seconds else None, "per_dot": dots}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--export", required=True, help="a manga job's export (trainer.export)")
  p.add_argument("--pages", type=int, help="only the first N pages")
  p.add_argument("--out", help="a folder for the first pages' outputs and regions.json")
  args = p.parse_args(argv)
  common.shared_data("manga")
  print(common.machine(), "| load", os.getloadavg(), "|",
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), flush=True)
  if args.out:
    os.makedirs(args.out, exist_ok=True)
  r = run(args.export, args.pages, args.out)
  print(f"{r['pages']} pages, {r['dots']} dots in bare-paper regions: on average "
        f"{r['mean_region_covered']:.1%} of a region within dE {COVER_DELTA_E:g} of its dot "
        f"(target >= 90 %); {r['dots_covering_80']:.1%} of the dots cover >= 80 % of their "
        f"region (target >= 80 %); white dots kept white: {r['white_dots_kept_white']:.1%} of "
        f"{r['white_dots']}; ink pixels (gray <= {INK_GRAY}) dark: {r['ink_dark_share']:.2%} "
        f"(target >= 99 %); median {r['median_seconds']:.2f} s a page")
  if args.out:
    with open(os.path.join(args.out, "regions.json"), "w") as f:
      json.dump(r, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
