"""The Beam batch job's steps over pages (serving.beam_colorize wires them): reading files and
archives, triage before the model, sorting its answers, writing pages and archives. Local paths
and gs:// go through Beam's file system alike.

The rules are those of every tool that colours a folder: names and clashes
(`serving.page_names`), hint files (`serving.hint_files`), the guarded archive reader
(`serving.archives`), the coloured .cbz and what it holds (`serving.cbz`), the "already in
colour" test and whole writes (`serving.pages`). Each bad input goes to the job's `rejected`
output with a reason that names it, and the rest of the job goes on.
"""
from __future__ import annotations

import errno
import io
import logging
import os
from typing import NamedTuple, Optional

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from koala import images
from koala.input_tree import outside_root
from pipeline.run import relative_to
from serving import archives, cbz, page_names
from serving.hint_files import PageGuidance
from serving.pages import safe_is_colour, write_atomic
from trainer.export import signatures

NAMESPACE = "koala_colorize"
REJECTED, DONE, KEPT = "rejected", "skipped_done", "kept_colour"
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
    return page_names.page_label(self.source, self.entry)


class Refused(NamedTuple):
  """What the model said about a page it would not colour."""
  reason: str


def write_whole(path: str, data: bytes) -> None:
  """Writes a file whole: renamed into place locally (serving.pages.write_atomic); gs:// objects
  appear only when their upload completes."""
  if "://" in path:
    with FileSystems.create(path) as f:
      f.write(data)
  else:
    write_atomic(path, data)


def not_read(path: str, rel: str, root: str) -> Optional[str]:
  """Why an input is not read: a gs:// object whose name below the input folder escapes it
  ('..'), or a local link that leads out of it (koala.input_tree); None when it is read."""
  if "://" in path:
    return archives.unsafe_name_reason(rel, "the output folder")
  return outside_root(path, root)


def read_file(path: str) -> bytes:
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    return f.read()


def list_folder(folder: str) -> list[str]:
  """The files directly in a folder, local or gs:// (hint_files.PageGuidance's `list_files`)."""
  folder = folder.rstrip("/")
  found = [m.path for m in FileSystems.match([f"{folder}/*"])[0].metadata_list]
  if not found and not FileSystems.exists(folder):
    raise ValueError(f"hints folder {folder}: no such folder")
  return found


def read_guidance_file(path: str) -> bytes:
  """read_file, with a missing file an OSError as on local disk (gs:// raises its client's
  NotFound), so hint_files.PageGuidance's rules see the same error everywhere."""
  if not FileSystems.exists(path):
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
  return read_file(path)


def load_guidance(hints_dir: Optional[str], reference: Optional[str]) -> PageGuidance:
  """serving.client's guidance, read through Beam's file system; ValueError says what is wrong."""
  return PageGuidance.load(hints_dir, reference, read=read_guidance_file, list_files=list_folder)


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
    output = f"{self.output_dir}/{page_names.output_name(rel)}"
    if page_names.is_archive_name(path):
      yield from self._archive(path, output)
    elif page_names.is_page_name(path):
      kept = page_names.kept_colour_name(output, path)
      if FileSystems.exists(output) or FileSystems.exists(kept):
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
          f"not a page ({', '.join(page_names.IMAGE_EXTENSIONS)}) or a .cbz archive")})

  def _archive(self, path: str, output: str):
    try:
      if FileSystems.exists(output):
        with open_archive(path) as f:
          names = [m.name for m in archives.members(f) if page_names.is_page_name(m.name)]
        for name in names:
          yield self._emit(DONE, {"path": page_names.page_label(path, name), "output": output})
        return
      with open_archive(path) as f:
        clash = page_names.entry_clashes(m.name for m in archives.members(f) if m.reason is None)
      if clash:
        raise archives.ArchiveError(clash)
      with open_archive(path) as f:   # read whole first: a refusal half-way refuses it all
        entries = [e for e in archives.iter_entries(f) if page_names.is_page_name(e.name)]
    except (archives.ArchiveError, OSError) as e:
      yield self._emit(REJECTED, {"path": path, "reason": str(e)})
      return
    if not entries:   # serving.cbz's rule: no page, no archive
      yield self._emit(REJECTED, {"path": path, "reason": cbz.NO_PAGES})
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
    if not self.colorize_colour_pages and safe_is_colour(data):
      self.kept.inc()
      if page.entry is None:
        page = page._replace(output=page_names.kept_colour_name(page.output, page.source))
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
      if page.hints and signatures.HINTS_BYTES in reason:   # the graph names the input it refused
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
  """(output .cbz, [(source, entry, bytes)]) -> the coloured archive, by `serving.cbz`: the
  pages that were coloured or kept, other entries copied, refused pages left out (they are in
  rejected.jsonl). An archive none of whose pages got here is never grouped, so not written."""

  def __init__(self):
    self.archives = Metrics.counter(NAMESPACE, "archives_written")

  def process(self, element):
    output, items = element
    items = list(items)
    source = items[0][0]
    done = {entry: data for _, entry, data in items}
    buf = io.BytesIO()
    with open_archive(source) as f:
      refused = cbz.write(f, buf, done)
    for name, reason in refused:   # not a page, so not counted: said in the log
      _LOG.warning("%s left out of %s: %s", page_names.page_label(source, name), output, reason)
    write_whole(output, buf.getvalue())
    self.archives.inc()
    yield output
