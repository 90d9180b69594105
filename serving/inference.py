"""The original project's Python entry points, running the exported SavedModel in-process (no
server):

  process_single_image(model_path, image_path, output_path, hints=None, reference=None)
  batch_colorize(model_path, input_folder, output_folder, hints=None, reference=None)

model_path is an export's version folder (models/koala/3) or its base path (models/koala, the
highest version is taken, as TF Serving does). The page goes through exactly the graph TF
Serving runs (decode, L, letterbox, embedder, colorizer, LAB -> RGB, PNG), so in-process and
served results are the same bytes. The loaded model is cached per path, because loading the
embedder costs seconds and a notebook calls these functions again and again.

Guidance (a model trained with `trainer.task --hints`): `hints` is an RGBA image whose opaque
pixels are colour hints (one file for a single page; a folder of them, matched to pages by file
stem, for a batch) and `reference` an image whose palette steers the colours. Either runs the
export's `colorize_guided` signature; without them, `serving_default` runs.
"""
from __future__ import annotations

import os
import sys

from serving.exports import load_model, refusal_reason
from serving import pages
from serving.hint_files import PageGuidance
from serving.pages import write_atomic
from trainer.export import signatures as names


def load(model_path: str):
  """-> colorize(bytes, hints=None, reference=None) -> PNG bytes, from the SavedModel's
  serving_default signature, or colorize_guided when hints or a reference (bytes) are given."""
  import tensorflow as tf
  signatures = load_model(model_path).signatures
  by_name = {names.SERVING_DEFAULT: signatures[names.SERVING_DEFAULT],
             names.COLORIZE_GUIDED: signatures.get(names.COLORIZE_GUIDED)}

  def colorize(data: bytes, hints: bytes | None = None, reference: bytes | None = None) -> bytes:
    name, inputs = names.signature_inputs(data, hints, reference)
    if by_name[name] is None:
      raise ValueError(names.no_guidance(f"the model at {model_path}"))
    try:
      out = by_name[name](**{k: tf.constant([v]) for k, v in inputs.items()})
    except tf.errors.InvalidArgumentError as e:
      raise ValueError(f"the model refused the image: {refusal_reason(e)}") from None
    return out[names.PNG_BYTES][0].numpy()
  return colorize


def _read(path_or_bytes) -> bytes | None:
  if path_or_bytes is None or isinstance(path_or_bytes, bytes):
    return path_or_bytes
  with open(path_or_bytes, "rb") as f:
    return f.read()


def process_single_image(model_path: str, image_path: str, output_path: str, *,
                         hints=None, reference=None) -> str:
  """Colours one page file and writes the PNG to output_path; returns output_path.
  hints / reference: a file path or the file's bytes (see the module's docstring)."""
  data = _read(image_path)
  guidance = {"hints": _read(hints), "reference": _read(reference)}
  write_atomic(output_path, load(model_path)(data, **guidance))
  return output_path


def batch_colorize(model_path: str, input_folder: str, output_folder: str, *,
                   hints: str | None = None, reference=None, skip_colour: bool = False,
                   overwrite: bool = False, progress: bool = True) -> pages.Report:
  """Colours every page (and .cbz) under input_folder into the same tree under output_folder,
  with a progress bar; outputs that exist are skipped, so a rerun resumes. hints: a folder of
  hint images matched to pages by file stem; reference: one image (path or bytes) for all.
  A bad hint file fails its page only (the report says why); a bad reference raises ValueError,
  and so do two pages that would share an output name (page_names.NameClash, naming both), before
  any page is coloured. Links that lead out of input_folder are skipped (report.skipped_inputs)."""
  if not os.path.isdir(input_folder):
    raise FileNotFoundError(f"{input_folder}: no such folder")
  jobs, problems = pages.find_jobs([input_folder], output_folder)
  guidance = PageGuidance.load(hints, reference)
  report = pages.run(jobs, load(model_path), concurrency=1, skip_colour=skip_colour,
                     overwrite=overwrite, progress=progress, desc="colorizing (in-process)",
                     guidance=guidance)
  report.skipped_inputs.extend(problems)
  return report


def main(argv=None) -> int:
  import argparse
  from serving import client
  p = argparse.ArgumentParser(description="Colour pages in-process with an exported model.")
  p.add_argument("--model_path", required=True)
  p.add_argument("input")
  p.add_argument("output")
  p.add_argument("--hints", default=None,
                 help="a hint image (RGBA; opaque pixels are colour hints), or for a folder "
                      "input, a folder of them matched to pages by file stem")
  p.add_argument("--reference", default=None, help="an image whose palette steers the colours")
  args = p.parse_args(argv)
  if os.path.isdir(args.input):
    return client.summarize(batch_colorize(args.model_path, args.input, args.output,
                                           hints=args.hints, reference=args.reference))
  process_single_image(args.model_path, args.input, args.output, hints=args.hints,
                       reference=args.reference)
  return 0


if __name__ == "__main__":
  sys.exit(main())
