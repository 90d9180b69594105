"""python -m serving.beam_colorize --model=EXPORT --input=GLOB --output_dir=DIR
                                  [--hints_dir=DIR] [--reference=IMAGE] [Beam options]

Colours a whole library (pages and .cbz archives, local or gs://) with an exported SavedModel,
inside Beam's RunInference, so the same job runs on a laptop or on Dataflow's CPU or GPU workers.

  Match ─► Expand ─► SpreadPages ─► Triage ─► Colorize ─► Sort ─► WriteColouredPages ─┐
                     (Reshuffle)       │      (RunInference)              (files written) │
                                       └──► WriteKeptPages ───────────────────────────────┤
                               archive pages ─► GroupByArchive ─► WriteArchives ◄─────────┘
  Expand, Triage and Sort send bad pages to rejected.jsonl; every count goes to manifest.json.
  The steps are serving/beam_pages.py's, the model serving/beam_model.py's.

Why this shape:
  * the model is the export's `serving_default` signature, or with guidance its
    `colorize_guided` (`trainer.export.signatures.signature_for`, the client's rule), the very
    graph TF Serving runs, so each page is the same PNG, byte for byte, that serving.client
    gets from the same export (serving/beam_model.py).
  * names, the "already in colour" test and the output layout are those of the client and
    batch_colorize (`serving.page_names`, `serving.pages`): a page -> DIR/<its relative
    path>.png, a page already in colour -> copied unchanged under its own extension, a .cbz ->
    DIR/<its relative path>.cbz by `serving.cbz`'s rule (each coloured page under its own stem
    as .png, every other entry copied, a refused page left out and in rejected.jsonl, the other
    pages kept). Two inputs that would share an output name (compared without case) stop the
    job before launch, naming both; two such entries of one .cbz reject that archive. A local
    link that leads out of the input folder, and a gs:// object whose name escapes it ('..'),
    are rejected, not read.
  * an output that exists is not redone (a killed job resumes; an archive resumes as a whole);
    outputs are written whole (renamed into place locally, one object write on gs://), so a
    killed job never leaves a half file that a rerun would take as done.
  * guidance (--hints_dir, --reference; a guided export): serving.client's rules, by the same
    code (`serving.hint_files.PageGuidance`, with Beam's file system so gs:// works): one hint
    image per page, matched by the file stem of the page or of the archive entry
    (hints/003.png steers p/003.jpg and every .cbz's 003.png), one reference for every page.
    The job then runs the export's `colorize_guided` signature for every page, with an empty
    hints_bytes for a page without a hint file. A bad hint file rejects its page only, and the
    reason names the file.
  * .cbz archives are read by serving.archives, the one guarded reader (zip bombs, names that
    escape the folder).
  * counts: in = coloured + kept_colour + skipped_done + rejected, in manifest.json and as Beam
    counters (namespace `koala_colorize`).

Without --runner it runs on Beam's FnApiRunner in one process, as pipeline.run does.
"""
from __future__ import annotations

import json
import logging
import sys
from typing import Optional

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from koala import schema
from pipeline import run as pipeline_run
from pipeline.options import ColorizeOptions, KoalaOptions
from pipeline.run import absolute, input_root, relative_to
from serving import exports, page_names
from serving.beam_model import SavedModelPageHandler
from serving.beam_pages import (DONE, KEPT, REJECTED, Expand, Sort, Triage, WriteArchive,
                                WritePage, load_guidance, not_read, read_file)
from trainer.export import info as export_info
from trainer.export import signatures

COUNTS = ("inputs", "coloured", KEPT, DONE, REJECTED)
_LOG = logging.getLogger(__name__)


def check_output_names(patterns: list[str], root: str) -> None:
  """Before launch, as the client does: page_names.NameClash, naming both, when two inputs would
  get one output name (compared without case). Inputs that Expand refuses are left out."""
  found = sorted({m.path for r in FileSystems.match(patterns) for m in r.metadata_list})
  page_names.check_outputs(
      (path, page_names.output_name(relative_to(path, root))) for path in found
      if (page_names.is_page_name(path) or page_names.is_archive_name(path))
      and not not_read(path, relative_to(path, root), root))


def read_export_info(version_dir: str) -> dict:
  """The export's description (`trainer.export.info`) for the manifest; {} when it has none."""
  if not FileSystems.exists(export_info.path(version_dir)):
    return {}
  return export_info.read(version_dir, read_bytes=read_file).to_dict()


def write_manifest(counts: dict, archives_written: int, output_dir: str, model: dict,
                   options: dict) -> dict:
  """manifest.json: the counts (in = coloured + kept_colour + skipped_done + rejected), the model
  version used and what it was exported from."""
  manifest = {"counts": {n: counts.get(n, 0) for n in COUNTS},
              "archives_written": archives_written, "model": model, "options": options}
  if export_info.ExportInfo.from_dict(model.get("export_info") or {}).random_weights:
    manifest["warning"] = ("the model's embedder has random weights: every stage ran, but the "
                           "colours mean nothing (see the README on the ImageNet weights)")
  with FileSystems.create(f"{output_dir}/{schema.MANIFEST}") as f:
    f.write(json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
  return manifest


def resolve_model(model_path: str) -> str:
  """The newest version folder of an export, local or gs://, by serving.exports' rule."""
  def children(base):
    matches = FileSystems.match([f"{base}/*/saved_model.pb"])[0].metadata_list
    return [m.path[len(base):].lstrip("/").split("/")[0] for m in matches]
  base = model_path.rstrip("/")
  return exports.resolve_version_dir(base, exists=FileSystems.exists, children=children,
                                     join=FileSystems.join)


def build_pipeline(p: beam.Pipeline, opts: KoalaOptions, model_opts: ColorizeOptions,
                   version_dir: str) -> None:
  out = opts.output_dir.rstrip("/")
  guidance_flags = guidance_of(model_opts)
  signature = signatures.signature_for(model_opts.hints_dir, model_opts.reference)
  handler = KeyedModelHandler(SavedModelPageHandler(version_dir, opts.min_batch_size,
                                                    opts.max_batch_size, signature))
  paths = (p | "InputPatterns" >> beam.Create(pipeline_run.input_patterns(opts.input))
           | "MatchFiles" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
           | "Paths" >> beam.Map(lambda m: m.path)
           | "DistinctPaths" >> beam.Distinct())
  expanded = paths | "Expand" >> beam.ParDo(
      Expand(input_root(opts.input), out)).with_outputs(DONE, REJECTED, main="pages")
  triaged = (expanded.pages | "SpreadPages" >> beam.Reshuffle()
             | "Triage" >> beam.ParDo(Triage(model_opts.colorize_colour_pages,
                                             guidance_flags)).with_outputs(
                 KEPT, REJECTED, main="to_colour"))
  sorted_ = (triaged.to_colour | "Colorize" >> RunInference(handler)
             | "Sort" >> beam.ParDo(Sort()).with_outputs(REJECTED, main="coloured"))
  # Written right where they come out (a Flatten first would be a stage boundary locally, and
  # every page would wait for the last batch).
  archive_pages = ((sorted_.coloured | "WriteColouredPages" >> beam.ParDo(WritePage()),
                    triaged[KEPT] | "WriteKeptPages" >> beam.ParDo(WritePage()))
                   | "ArchivePages" >> beam.Flatten())
  written = (archive_pages | "GroupByArchive" >> beam.GroupByKey()
             | "WriteArchives" >> beam.ParDo(WriteArchive()))

  rejected = ((expanded[REJECTED], triaged[REJECTED], sorted_[REJECTED])
              | "AllRejected" >> beam.Flatten())
  pipeline_run.write_jsonl(rejected, out, schema.REJECTED, "Rejected")
  inputs = ((expanded.pages, expanded[DONE], expanded[REJECTED]) | "AllInputs" >> beam.Flatten())
  counts = [pipeline_run.count(inputs, "inputs"), pipeline_run.count(sorted_.coloured, "coloured"),
            pipeline_run.count(triaged[KEPT], KEPT), pipeline_run.count(expanded[DONE], DONE),
            pipeline_run.count(rejected, REJECTED)]
  model = {"path": model_opts.model, "version_dir": version_dir,
           "export_info": read_export_info(version_dir)}
  options = {"input": opts.input, "output_dir": opts.output_dir, "model": model_opts.model,
             "colorize_colour_pages": model_opts.colorize_colour_pages,
             "hints_dir": model_opts.hints_dir, "reference": model_opts.reference,
             "min_batch_size": opts.min_batch_size, "max_batch_size": opts.max_batch_size}
  (counts | "AllCounts" >> beam.Flatten() | "CountsDict" >> beam.combiners.ToDict()
   | "WriteManifest" >> beam.Map(
       write_manifest, archives_written=beam.pvalue.AsSingleton(
           written | "CountArchives" >> beam.combiners.Count.Globally()),
       output_dir=out, model=model, options=options))


def guidance_of(model_opts: ColorizeOptions) -> Optional[tuple]:
  """(hints_dir, reference) when either is given (the job then runs colorize_guided), else None."""
  if model_opts.hints_dir is None and model_opts.reference is None:
    return None
  return model_opts.hints_dir, model_opts.reference


def export_signatures(version_dir: str) -> set:
  """The signature names in an export's saved_model.pb (what TF Serving would offer), read
  without loading the model."""
  from tensorflow.core.protobuf import saved_model_pb2
  model = saved_model_pb2.SavedModel.FromString(read_file(f"{version_dir}/saved_model.pb"))
  return {name for graph in model.meta_graphs for name in graph.signature_def}


def check_guidance(model_opts: ColorizeOptions, version_dir: str) -> None:
  """Before launch, as serving.client does: the hints folder and the reference read, and the
  export has colorize_guided; ValueError (one sentence) if not."""
  flags = guidance_of(model_opts)
  if flags is None:
    return
  guidance = load_guidance(*flags)
  if signatures.signature_for(*flags) not in export_signatures(version_dir):
    raise ValueError(signatures.no_guidance(f"the export at {version_dir}"))
  _LOG.info("guidance: %d hint files%s", len(guidance.hints),
            ", one reference for every page" if guidance.reference else "")


def run(argv=None, test_pipeline=None):
  """Builds and runs the job; returns the PipelineResult (finished)."""
  argv = list(sys.argv[1:] if argv is None else argv)
  options = pipeline_run.pipeline_options(argv)
  opts, model_opts = options.view_as(KoalaOptions), options.view_as(ColorizeOptions)
  if not model_opts.model:
    raise ValueError("--model is required: an export folder (python -m trainer.export)")
  FileSystems.set_options(options)
  if opts.input is None or opts.input_list is not None:
    raise ValueError("serving.beam_colorize reads --input (a glob, a folder or a file); "
                     "--input_list is pipeline.run's")
  patterns = pipeline_run.input_patterns(opts.input)
  pipeline_run.check_inputs_exist(patterns)
  root, out = input_root(opts.input), absolute(opts.output_dir.rstrip("/"))
  if any("**" in p for p in patterns) and (out + "/").startswith(root + "/"):
    raise ValueError(f"--output_dir {opts.output_dir} is inside the folder that --input reads "
                     "recursively: a rerun would take the coloured pages for new input. Put the "
                     "output elsewhere.")
  check_output_names(patterns, root)
  version_dir = resolve_model(model_opts.model)   # once, so every worker runs the same version
  check_guidance(model_opts, version_dir)
  _LOG.info("colouring with %s", version_dir)
  return pipeline_run.run_to_end(
      options, lambda p: build_pipeline(p, opts, model_opts, version_dir), test_pipeline)


if __name__ == "__main__":
  logging.getLogger().setLevel(logging.INFO)
  try:
    run()
  except (ValueError, FileNotFoundError) as e:   # bad flags, no inputs, no export: a sentence
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
