"""Which palette histogram describes a reference's colours better: python bench/palette_choice.py

The guided model's palette (koala.guidance) could be a coarse ab grid or Comicolorization's
6 x 6 x 6 RGB histogram. The model already has L, so what a palette must carry is chroma. For
each colour image of ../shared/data/train.txt (at 224 px on the long side) this recolours every
pixel with the ab of its bin's centre (for an RGB bin: the LAB ab of the bin's centre colour),
keeps the image's own L, and scores the result against the original: the finer the palette's
colour vocabulary where it matters, the higher the PSNR and the smaller the ab error. It also
counts the bins an image uses (a histogram that spends its bins well uses more of them).
Skips cleanly where ../shared/data is absent.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench import common, trainer_records  # noqa: E402
from koala import colour, guidance, images  # noqa: E402
from trainer import metrics  # noqa: E402

RGB_LEVELS = 6


def ab_grid_recolour(lab: np.ndarray) -> tuple[np.ndarray, int]:
  cells = guidance._palette_cells_np(lab[..., 1:])
  return guidance.palette_centres()[cells], len(np.unique(cells))


def rgb_histogram_recolour(rgb_u8: np.ndarray) -> tuple[np.ndarray, int]:
  idx = np.minimum(rgb_u8.astype(np.int64) * RGB_LEVELS // 256, RGB_LEVELS - 1)
  centres = (idx + 0.5) / RGB_LEVELS                     # the bin's centre colour, [0, 1]
  cells = (idx[..., 0] * RGB_LEVELS + idx[..., 1]) * RGB_LEVELS + idx[..., 2]
  return colour.rgb_to_lab(centres.astype(np.float32))[..., 1:], len(np.unique(cells))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--limit", type=int)
  args = p.parse_args(argv)
  common.shared_data()
  files = [f for sub in trainer_records.COLOUR_FOLDERS for f in common.split_files("train", sub)]
  files = files[:args.limit]
  scores = {"ab grid (121 bins)": [], "RGB 6x6x6 (216 bins)": []}
  for path in files:
    with open(path, "rb") as f:
      rgb = images.decode_image(f.read())
    scale = 224 / max(rgb.shape[:2])
    rgb = images.resize(rgb, max(1, round(rgb.shape[0] * scale)),
                        max(1, round(rgb.shape[1] * scale)))
    lab = colour.rgb_to_lab(rgb)
    for name, (ab, used) in zip(scores, (ab_grid_recolour(lab), rgb_histogram_recolour(rgb))):
      out = colour.to_uint8(colour.lab_to_rgb(np.concatenate([lab[..., :1], ab], axis=-1)))
      err = np.linalg.norm(ab - lab[..., 1:], axis=-1)
      scores[name].append((metrics.psnr(rgb, out), float(err.mean()), used))
  print(f"{len(files)} colour images of train.txt at 224 px; recoloured with each bin's centre")
  print(f"{'histogram':<24}{'PSNR dB':>10}{'mean ab error':>15}{'bins used':>11}")
  for name, rows in scores.items():
    psnr, err, used = np.mean(np.asarray(rows, np.float64), axis=0)
    print(f"{name:<24}{psnr:>10.2f}{err:>15.2f}{used:>11.1f}")


if __name__ == "__main__":
  main()
