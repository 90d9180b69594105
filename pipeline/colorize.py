"""python -m pipeline.colorize --model=EXPORT --input=GLOB --output_dir=DIR
                              [--hints_dir=DIR] [--reference=IMAGE] [Beam options]

Colours a whole library (pages and .cbz archives, local or gs://) with an exported SavedModel,
inside Beam's RunInference, so the same job runs on a laptop or on Dataflow's CPU or GPU workers.

  Match ─► Expand ─► SpreadPages ─► Triage ─► Colorize ─► Sort ─► WriteColouredPages ─┐
                     (Reshuffle)       │      (RunInference)              (files written) │
                                       └──► WriteKeptPages ───────────────────────────────┤
                               archive pages ─► GroupByArchive ─► WriteArchives ◄─────────┘
  Expand, Triage and Sort send bad pages to rejected.jsonl; every count goes to manifest.json.

Why this shape:
  * the model is the export's `serving_default` signature (image_bytes -> png_bytes), or with
    guidance its `colorize_guided`, the very graph TF Serving runs, so each page is the same
    PNG, byte for byte, that serving.client gets from the same export. RunInference loads it
    once per worker process (shared by the process's threads) and feeds it batches; a batch the
    model refuses (one truncated page, or hint image) is retried page by page, so only the bad
    page is rejected.
  * names, the "already in colour" test and the output layout are koala/pages.py's, so the
    batch job, the client and batch_colorize agree: a page -> DIR/<its relative path>.png, a
    page already in colour -> copied unchanged under its own extension, a .cbz -> DIR/<its
    relative path>.cbz with each coloured page under its own stem (.png) and every other entry
    copied. Two inputs that would share an output name (compared without case) stop the job
    before launch, naming both; two such entries of one .cbz reject that archive. A local link
    that leads out of the input folder, and a gs:// object whose name escapes it ('..'), are
    rejected, not read.
  * an output that exists is not redone (a killed job resumes; an archive resumes as a whole);
    outputs are written whole (renamed into place locally, one object write on gs://), so a
    killed job never leaves a half file that a rerun would take as done.
  * guidance (--hints_dir, --reference; a guided export): serving.client's rules, by the same
    code (pages.Guidance, with Beam's file system so gs:// works): one hint image per page,
    matched by the file stem of the page or of the archive entry (hints/003.png steers p/003.jpg
    and every .cbz's 003.png), one reference for every page. The job then runs the export's
    `colorize_guided` signature for every page, with an empty hints_bytes for a page without
    a hint file. A bad hint file rejects its page only, and the reason names the file.
  * .cbz archives are read by koala.archives, the one guarded reader (zip bombs, names that
    escape the folder); a refused page is rejected, the archive keeps its other pages.
  * counts: in = coloured + kept_colour + skipped_done + rejected, in manifest.json and as Beam
    counters (namespace `koala_colorize`).

Without --runner it runs on Beam's FnApiRunner in one process, as pipeline.run does.
"""
from __future__ import annotations

import errno
import io
import json
import logging
import os
import sys
import tempfile
import zipfile
from typing import Any, NamedTuple, Optional, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import (KeyedModelHandler, ModelHandler, PredictionResult,
                                           RunInference)

from koala import archives, exports, images, pages, schema, storage
from pipeline import run as pipeline_run
from pipeline.options import ColorizeOptions, KoalaOptions
from trainer.export import signatures
from pipeline.run import absolute, input_root, relative_to

NAMESPACE = "koala_colorize"
REJECTED, DONE, KEPT = "rejected", "skipped_done", "kept_colour"
COUNTS = ("inputs", "coloured", KEPT, DONE, REJECTED)
EXPORT_INFO = "assets.extra/koala_export.json"
_LOG = logging.getLogger(__name__)


class Page(NamedTuple):
  """One page: a file (entry None) or an archive's entry. `output` is the page's file, or for an
  archive page the coloured archive it goes into; `hints` its hint file, if any."""
  source: str
  entry: Optional[str]
  output: str
  hints: Optional[str] = None

  @property
  def label(self) -> str:
    return f"{self.source}!{self.entry}" if self.entry else self.source


class Refused(NamedTuple):
  """What the model said about a page it would not colour."""
  reason: str


def write_whole(path: str, data: bytes) -> None:
  """Writes a file whole: renamed into place locally (pages.write_atomic); gs:// objects appear
  only when their upload completes."""
  if "://" in path:
    with FileSystems.create(path) as f:
      f.write(data)
  else:
    pages.write_atomic(path, data)


def not_read(path: str, rel: str, root: str) -> Optional[str]:
  """Why an input is not read: a gs:// object whose name below the input folder escapes it
  ('..'), or a local link that leads out of it (koala.pages' rule); None when it is read."""
  if "://" in path:
    return archives.unsafe_name_reason(rel, "the output folder")
  return pages.outside_root(path, root)


def check_output_names(patterns: list[str], root: str) -> None:
  """Before launch, as the client does: pages.NameClash, naming both, when two inputs would get
  one output name (compared without case). Inputs that Expand refuses are left out."""
  found = sorted({m.path for r in FileSystems.match(patterns) for m in r.metadata_list})
  pages.check_outputs(
      (path, pages.output_name(relative_to(path, root))) for path in found
      if (pages.is_page_name(path) or path.lower().endswith(pages.ARCHIVE_EXTENSIONS))
      and not not_read(path, relative_to(path, root), root))


def read_file(path: str) -> bytes:
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    return f.read()


def list_folder(folder: str) -> list[str]:
  """The files directly in a folder, local or gs:// (pages.Guidance's `list_files`)."""
  folder = folder.rstrip("/")
  found = [m.path for m in FileSystems.match([f"{folder}/*"])[0].metadata_list]
  if not found and not FileSystems.exists(folder):
    raise ValueError(f"hints folder {folder}: no such folder")
  return found


def read_guidance_file(path: str) -> bytes:
  """read_file, with a missing file an OSError as on local disk (gs:// raises its client's
  NotFound), so pages.Guidance's rules see the same error everywhere."""
  if not FileSystems.exists(path):
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
  return read_file(path)


def load_guidance(hints_dir: Optional[str], reference: Optional[str]) -> pages.Guidance:
  """serving.client's guidance, read through Beam's file system; ValueError says what is wrong."""
  return pages.Guidance.load(hints_dir, reference, read=read_guidance_file,
                             list_files=list_folder)


def open_archive(path: str):
  """A seekable binary file object of an archive (zipfile seeks to the central directory)."""
  return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


class Expand(beam.DoFn):
  """path -> (Page, bytes) for every page to colour; a .cbz fans out into its pages. Pages whose
  output exists go to `skipped_done`; files that are neither pages nor archives, archives that
  cannot be read and refused entries go to `rejected`."""

  def __init__(self, root: str, output_dir: str):
    self.root, self.output_dir = root, output_dir
    self.counters = {n: Metrics.counter(NAMESPACE, n) for n in ("inputs", DONE, REJECTED)}

  def _emit(self, tag, value):
    self.counters["inputs"].inc()
    if tag != "main":
      self.counters[tag].inc()
      return beam.pvalue.TaggedOutput(tag, value)
    return value

  def process(self, path: str):
    rel = relative_to(path, self.root)
    refused = not_read(path, rel, self.root)
    if refused:
      yield self._emit(REJECTED, {"path": path, "reason": refused})
      return
    output = f"{self.output_dir}/{pages.output_name(rel)}"
    if path.lower().endswith(pages.ARCHIVE_EXTENSIONS):
      yield from self._archive(path, output)
    elif pages.is_page_name(path):
      if FileSystems.exists(output) or FileSystems.exists(pages.kept_colour_name(output, path)):
        yield self._emit(DONE, {"path": path, "output": output})
        return
      try:
        data = read_file(path)
      except Exception as e:   # an unreadable file is this file's problem, not the job's
        yield self._emit(REJECTED, {"path": path, "reason": f"unreadable: {e}"})
        return
      yield self._emit("main", (Page(path, None, output), data))
    else:
      yield self._emit(REJECTED, {"path": path, "reason": (
          f"not a page ({', '.join(pages.IMAGE_EXTENSIONS)}) or a .cbz archive")})

  def _archive(self, path: str, output: str):
    try:
      if FileSystems.exists(output):
        with open_archive(path) as f:
          names = [m.name for m in archives.members(f) if pages.is_page_name(m.name)]
        for name in names:
          yield self._emit(DONE, {"path": f"{path}!{name}", "output": output})
        return
      with open_archive(path) as f:
        clash = pages.entry_clashes(m.name for m in archives.members(f) if m.reason is None)
      if clash:
        raise archives.ArchiveError(clash)
      with open_archive(path) as f:   # read whole first: a refusal half-way refuses it all
        entries = [e for e in archives.iter_entries(f) if pages.is_page_name(e.name)]
    except (archives.ArchiveError, OSError) as e:
      yield self._emit(REJECTED, {"path": path, "reason": str(e)})
      return
    for entry in entries:   # ComicInfo.xml and the like are copied when the archive is written
      page = Page(path, entry.name, output)
      if entry.data is None:
        yield self._emit(REJECTED, {"path": page.label, "reason": entry.reason})
      else:
        yield self._emit("main", (page, entry.data))


class Triage(beam.DoFn):
  """(Page, bytes) -> to the model; or `kept_colour` (already in colour, the client's rule); or
  `rejected` (not an image by its header, the client's own check before it sends a page; or a
  bad hint file). With guidance (hints_dir, reference), a page goes to the model as
  (Page, (image, hints, reference)), b"" for none; the guidance is loaded once per worker
  (setup), not shipped inside the job graph."""

  def __init__(self, colorize_colour_pages: bool, guidance_flags: Optional[tuple] = None):
    self.colorize_colour_pages = colorize_colour_pages
    self.guidance_flags = guidance_flags
    self.guidance = None
    self.kept = Metrics.counter(NAMESPACE, KEPT)
    self.rejected = Metrics.counter(NAMESPACE, REJECTED)
    self.hinted = Metrics.counter(NAMESPACE, "pages_with_hints")

  def setup(self):
    if self.guidance_flags:
      self.guidance = load_guidance(*self.guidance_flags)

  def process(self, element):
    page, data = element
    try:
      images.image_size(data)   # the header check serving.client makes before it sends a page
    except ValueError as e:
      self.rejected.inc()
      yield beam.pvalue.TaggedOutput(REJECTED, {"path": page.label,
                                                "reason": f"not a usable image: {e}"})
      return
    if not self.colorize_colour_pages and pages.safe_is_colour(data):
      self.kept.inc()
      if page.entry is None:
        page = page._replace(output=pages.kept_colour_name(page.output, page.source))
      yield beam.pvalue.TaggedOutput(KEPT, (page, data))
      return
    if self.guidance is None:
      yield page, data
      return
    try:
      guide = self.guidance.for_page(page.entry or page.source)
    except ValueError as e:   # the hint file's fault: this page only
      self.rejected.inc()
      yield beam.pvalue.TaggedOutput(REJECTED, {"path": page.label, "reason": str(e)})
      return
    if guide["hints"] is not None:
      self.hinted.inc()
      page = page._replace(hints=self.guidance.hint_path(page.entry or page.source))
    yield page, (data, guide["hints"] or b"", guide["reference"] or b"")


def copy_folder(remote: str, local: str) -> None:
  """Every file below `remote` (gs://, or the Cloud Storage emulator in tests, which
  TensorFlow's own GCS file system cannot reach) into `local`, by Beam's file system; an object
  whose name would escape `local` refuses the copy before anything is written
  (koala.storage.local_path)."""
  found = [(m.path, storage.local_path(local, m.path[len(remote):].lstrip("/"), m.path))
           for m in FileSystems.match([f"{remote}/**"])[0].metadata_list]
  for path, dest in found:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as f:
      f.write(read_file(path))


class SavedModelPageHandler(ModelHandler[Any, PredictionResult, Any]):
  """Image file bytes in, the export's `serving_default` PNG bytes out (or Refused); guided:
  (image, hints, reference) bytes in, `colorize_guided`'s PNG bytes out."""

  def __init__(self, version_dir: str, min_batch_size: int = 16, max_batch_size: int = 16,
               guided: bool = False):
    super().__init__()
    self.version_dir = version_dir
    self.guided = guided
    self._batch_kwargs = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

  def load_model(self):
    if "://" not in self.version_dir:
      return exports.load_model(self.version_dir)
    import tensorflow as tf
    # A remote export is copied here first; loading reads every file it needs (variables are
    # restored into memory), so the copy is removed once the model is loaded.
    with tempfile.TemporaryDirectory(prefix="koala-model-") as local:
      copy_folder(self.version_dir, local)
      return tf.saved_model.load(local)

  def run_inference(self, batch: Sequence[bytes], model,
                    inference_args: Optional[dict[str, Any]] = None):
    return [PredictionResult(None, out, self.version_dir) for out in self._colorize(batch, model)]

  def _colorize(self, batch: Sequence[bytes], model) -> list:
    import tensorflow as tf
    try:
      if self.guided:
        images, hints, references = (tf.constant(list(column)) for column in zip(*batch))
        out = model.signatures[signatures.COLORIZE_GUIDED](
            image_bytes=images, hints_bytes=hints, reference_bytes=references)
      else:
        out = model.signatures[signatures.SERVING_DEFAULT](image_bytes=tf.constant(list(batch)))
      return list(out[signatures.PNG_BYTES].numpy())
    except tf.errors.InvalidArgumentError as e:
      if len(batch) == 1:
        return [Refused(f"the model refused the image: {exports.refusal_reason(e)}")]
    # One page spoils its batch: redo the batch page by page, so only that page is refused.
    return [out for data in batch for out in self._colorize([data], model)]

  def batch_elements_kwargs(self):
    return self._batch_kwargs

  def get_metrics_namespace(self) -> str:
    return "koala_colorize_model"


class Sort(beam.DoFn):
  """(Page, PredictionResult) -> (Page, PNG bytes); pages the model refused -> `rejected` (a
  refused hint image is named by its file)."""

  def __init__(self):
    self.coloured = Metrics.counter(NAMESPACE, "coloured")
    self.rejected = Metrics.counter(NAMESPACE, REJECTED)

  def process(self, element):
    page, result = element
    if isinstance(result.inference, Refused):
      self.rejected.inc()
      reason = result.inference.reason
      if page.hints and signatures.HINTS_BYTES in reason:   # tf_guidance names the input it refused
        reason = f"hints file {page.hints}: {reason}"
      yield beam.pvalue.TaggedOutput(REJECTED, {"path": page.label, "reason": reason})
      return
    self.coloured.inc()
    yield page, result.inference


class WritePage(beam.DoFn):
  """(Page, bytes): a file page is written now; an archive page goes on to its archive."""

  def process(self, element):
    page, data = element
    if page.entry is None:
      write_whole(page.output, data)
    else:
      yield page.output, (page.source, page.entry, data)


class WriteArchive(beam.DoFn):
  """(output .cbz, [(source, entry, bytes)]) -> the coloured archive, in the source's entry
  order; pages under their coloured names (pages.archive_entry_name), other entries copied,
  refused pages left out (they are in rejected.jsonl)."""

  def __init__(self):
    self.archives = Metrics.counter(NAMESPACE, "archives_written")

  def process(self, element):
    output, items = element
    items = list(items)
    source = items[0][0]
    done = {entry: data for _, entry, data in items}
    with open_archive(source) as f:
      order = [m.name for m in archives.members(f) if m.reason is None]
    others = [n for n in order if n not in done and not pages.is_page_name(n)]
    with open_archive(source) as f:
      copied = {e.name: e.data for e in archives.iter_entries(f, names=others) if e.data}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
      for name in order:
        if name in done:
          dst.writestr(pages.archive_entry_name(name, done[name]), done[name],
                       compress_type=zipfile.ZIP_STORED)
        elif name in copied:
          dst.writestr(name, copied[name], compress_type=zipfile.ZIP_DEFLATED)
    write_whole(output, buf.getvalue())
    self.archives.inc()
    yield output


def read_export_info(version_dir: str) -> dict:
  path = f"{version_dir}/{EXPORT_INFO}"
  if not FileSystems.exists(path):
    return {}
  return json.loads(read_file(path))


def write_manifest(counts: dict, archives_written: int, output_dir: str, model: dict,
                   options: dict) -> dict:
  """manifest.json: the counts (in = coloured + kept_colour + skipped_done + rejected), the model
  version used and what it was exported from."""
  manifest = {"counts": {n: counts.get(n, 0) for n in COUNTS},
              "archives_written": archives_written, "model": model, "options": options}
  embedder = (model.get("export_info") or {}).get("embedder") or {}
  if embedder.get("random_weights"):
    manifest["warning"] = ("the model's embedder has random weights: every stage ran, but the "
                           "colours mean nothing (see the README on the ImageNet weights)")
  with FileSystems.create(f"{output_dir}/{schema.MANIFEST}") as f:
    f.write(json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
  return manifest


def resolve_model(model_path: str) -> str:
  """The newest version folder of an export, local or gs://, by koala.exports' rule."""
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
  handler = KeyedModelHandler(SavedModelPageHandler(version_dir, opts.min_batch_size,
                                                    opts.max_batch_size, bool(guidance_flags)))
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
  if signatures.COLORIZE_GUIDED not in export_signatures(version_dir):
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
    raise ValueError("pipeline.colorize reads --input (a glob, a folder or a file); "
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
