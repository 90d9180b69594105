"""export(): a trained job -> a TF Serving version folder.

writes TF Serving's layout, <export_dir>/<version>/saved_model.pb + variables/ (+ the export's
description, assets.extra/koala_export.json, `trainer.export.info`). Version N defaults to one
above the highest already there, so exporting again rolls a running server forward. The version
folder is written under a temporary name and renamed, so a server polling the folder never
loads a half-written model.
"""
from __future__ import annotations

import logging
import os
import time

import tensorflow as tf

from koala import images, regions
from trainer import artifacts
from trainer.export import ExportError, info
from trainer.export.embedder import rebuild_embedder
from trainer.export.module import KoalaServing
from trainer.export.signatures import COLORIZE_GUIDED, COLORIZE_TENSORS, SERVING_DEFAULT

# zlib level of the output PNG. 0 (stored) is lossless like every level and half the cost of
# level 1 on an A4 page, the largest cost after the networks (docs/benchmarks.md), at about 3x the
# bytes; --png_compression=1 trades time for the smaller file (docs/benchmarks.md, "Default
# output").
DEFAULT_PNG_COMPRESSION = 0
MAX_GAP_CLOSING = 8        # fill pixels: wider closing swallows small regions whole

_LOG = logging.getLogger(__name__)


def next_version(export_dir: str) -> int:
  """One above the highest numeric version folder (TF Serving's convention), or 1."""
  if not tf.io.gfile.isdir(export_dir):
    return 1
  versions = [int(n.strip("/")) for n in tf.io.gfile.listdir(export_dir) if n.strip("/").isdigit()]
  return max(versions, default=0) + 1


def export(job_dir: str, export_dir: str, version: int | None = None, *,
           max_pixels: int = images.DEFAULT_MAX_PIXELS,
           png_compression: int = DEFAULT_PNG_COMPRESSION,
           gap_closing: int = regions.DEFAULT_CLOSING) -> str:
  """Writes <export_dir>/<version>/ and returns its path."""
  started = time.time()
  version = next_version(export_dir) if version is None else int(version)
  if version < 1:
    raise ExportError(f"--version must be a positive integer, got {version}")
  final = artifacts.join(export_dir, str(version))
  if tf.io.gfile.exists(final):
    raise ExportError(f"{final} exists already; TF Serving versions are immutable, pick another "
                      "--version or leave it out to take the next one")
  colorizer, trained = artifacts.load_trained(job_dir)
  embed, identity = rebuild_embedder(trained.embedder)
  _LOG.info("loaded the model and rebuilt the embedder in %.1f s", time.time() - started)
  if not 0 <= gap_closing <= MAX_GAP_CLOSING:
    raise ExportError(f"--gap_closing must be 0..{MAX_GAP_CLOSING} fill pixels, got {gap_closing}")
  module = KoalaServing(colorizer, embed, max_pixels=max_pixels, png_compression=png_compression,
                        composition=trained.composition, gap_closing=gap_closing)
  _LOG.info("built the LAB -> sRGB table at %.1f s", time.time() - started)
  signatures = {SERVING_DEFAULT: module.serve, COLORIZE_TENSORS: module.colorize_fn}
  if module.guided:
    signatures[COLORIZE_GUIDED] = module.serve_guided
  local = "://" not in export_dir
  target = artifacts.join(export_dir, f".tmp-{version}-{os.getpid()}") if local else final
  tf.io.gfile.makedirs(export_dir)
  tf.saved_model.save(module, target, signatures=signatures)
  info.write(target, info.ExportInfo(
      embedder=trained.embedder, embedder_identity=identity, colorizer_size=module.size,
      max_pixels=module.max_pixels, png_compression=module.png_compression,
      gap_closing=module.gap_closing if module.manga else None,
      job_dir=job_dir, signatures=sorted(signatures), rendering=trained.rendering_dict()))
  if local:
    os.rename(target, final)
  _LOG.info("exported %s in %.1f s", final, time.time() - started)
  return final
