"""The thread-pool walker: what the client, the in-process batch tool and the Streamlit page
share to colour files, folders and .cbz archives, running one colorize function over every
page with a progress bar.

Why one module: `serving.client` colours pages through a REST server,
`serving.inference.batch_colorize` through an in-process SavedModel and the Streamlit page
through either, but users expect the three to treat folders, archives and reruns identically.
Only the `colorize(bytes) -> png bytes` function differs. Names are `serving.page_names`',
hint files `serving.hint_files`', and a coloured .cbz is written by `serving.cbz` under its
rule, all of which the Beam batch job (serving.beam_colorize) follows too.

Rules:
  * a file -> <output_dir>/<stem>.png; a folder -> the same relative tree under output_dir;
    a .cbz -> <output_dir>/<stem>.cbz (`serving.cbz`: the pages coloured, as PNG, every other
    entry copied, a refused page left out and reported).
  * two inputs whose outputs would share a name (compared without case) stop the run before
    any page is coloured (`page_names.NameClash`, naming both); two such entries of one .cbz
    fail that archive. A symbolic link in a folder that leads outside it is skipped and
    reported as a problem (`koala.input_tree`).
  * an output that exists already is skipped, so a rerun resumes; outputs are written whole
    (`atomic_file`): a file of a random name made by `tempfile` (O_EXCL, never through a link
    planted in the folder), renamed into place, so an interrupted run never leaves a half file
    to be skipped.
  * with skip_colour, pages that are already in colour are copied unchanged, by the same test
    the pipeline uses to call an image gray (`koala.gray`).
  * archives are read only through `serving.archives` (page byte cap, streaming, no names that
    escape the folder): a refused entry is reported with its reason, and the other pages go
    through.
  * guidance (`serving.hint_files.PageGuidance`): a hint file is read when its page is coloured, so
    a bad one fails that page only, and the report names it; the colorize function is then
    called as colorize(data, hints=..., reference=...).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
import tempfile
import threading
from typing import Callable

from koala import gray, images
from koala.input_tree import outside_root
from serving import archives, cbz
from serving.hint_files import PageGuidance
from serving.page_names import (IMAGE_EXTENSIONS, check_outputs, entry_clashes, is_archive_name,
                                is_page_name, kept_colour_name, output_name, page_label)


def is_colour(data: bytes) -> bool:
  """True when a page is already in colour, by the pipeline's own gray test."""
  return gray.is_colour(images.decode_image(data))


def safe_is_colour(data: bytes) -> bool:
  try:
    return is_colour(data)
  except Exception:   # undecodable here: let the model's own decoder give the error
    return False


def _umask() -> int:
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


_FILE_MODE = 0o666 & ~_umask()     # what open() would have given a new file


@contextlib.contextmanager
def atomic_file(path: str):
  """A binary file that appears at `path` whole when the block ends, or not at all: written
  under a random hidden name made by tempfile (O_EXCL), then renamed over `path`, so an
  interrupted run never leaves a half file that a rerun would take as done."""
  folder = os.path.dirname(path) or "."
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".part")
  try:
    with os.fdopen(fd, "wb") as f:
      os.fchmod(f.fileno(), _FILE_MODE)
      yield f
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def write_atomic(path: str, data: bytes) -> None:
  """Writes a whole file through `atomic_file`."""
  with atomic_file(path) as f:
    f.write(data)


@dataclasses.dataclass
class Job:
  """One output file: a single image, or an archive whose pages are coloured one by one."""
  source: str
  output: str
  entries: list[str] | None = None        # archive members that are pages, in order
  refused: dict[str, str] = dataclasses.field(default_factory=dict)   # archive member -> reason

  @property
  def is_archive(self) -> bool:
    return self.entries is not None


@dataclasses.dataclass
class Report:
  done: list[str] = dataclasses.field(default_factory=list)
  skipped_existing: list[str] = dataclasses.field(default_factory=list)
  kept_colour: list[str] = dataclasses.field(default_factory=list)
  failed: dict[str, str] = dataclasses.field(default_factory=dict)   # page -> reason
  skipped_inputs: list[str] = dataclasses.field(default_factory=list)   # "path: why", not read


def find_jobs(inputs: list[str], output_dir: str) -> tuple[list[Job], list[str]]:
  """-> (jobs, problems): problems are inputs that do not exist or are not pages/archives, and
  links that lead out of a folder (skipped). NameClash, before anything is read, when two
  inputs would share an output name."""
  jobs, problems = [], []
  for item in inputs:
    if os.path.isdir(item):
      for root, dirs, files in os.walk(item):   # links to folders are not walked into
        dirs.sort()
        links = [os.path.join(root, d) for d in dirs if os.path.islink(os.path.join(root, d))]
        pages = [os.path.join(root, name) for name in sorted(files)
                 if is_page_name(name) or is_archive_name(name)]
        for path in links + pages:
          reason = outside_root(path, item)
          if reason:
            problems.append(f"{path}: {reason}")
          elif path in pages:
            rel = os.path.relpath(path, item)
            jobs.append(_job(path, os.path.join(output_dir, output_name(rel))))
    elif os.path.isfile(item):
      if is_page_name(item) or is_archive_name(item):
        jobs.append(_job(item, os.path.join(output_dir, output_name(os.path.basename(item)))))
      else:
        problems.append(f"{item}: not a page ({', '.join(IMAGE_EXTENSIONS)}) or a .cbz archive")
    else:
      problems.append(f"{item}: no such file or folder")
  named = {(os.path.abspath(job.source), job.output): job for job in jobs}   # named twice: once
  jobs = [job for job in jobs if named[(os.path.abspath(job.source), job.output)] is job]
  check_outputs([(job.source, os.path.relpath(job.output, output_dir)) for job in jobs])
  return jobs, problems


def _job(path: str, output: str) -> Job:
  if is_archive_name(path):
    return Job(path, output, entries=[])
  return Job(path, output)


def _list_archive(job: Job) -> None:
  """The job's pages (sorted) and its refused members, from the central directory alone;
  ArchiveError when two entries would share a name in the coloured archive."""
  members = archives.members(job.source)
  clash = entry_clashes(m.name for m in members if not m.reason)
  if clash:
    raise archives.ArchiveError(clash)
  job.refused = {m.name: m.reason for m in members if m.reason}
  job.entries = sorted(m.name for m in members if not m.reason and is_page_name(m.name))


def run(jobs: list[Job], colorize: Callable[[bytes], bytes], *, concurrency: int = 1,
        skip_colour: bool = False, overwrite: bool = False, progress: bool = True,
        desc: str = "colorizing", guidance: PageGuidance | None = None,
        on_page: Callable[[int, int], None] | None = None) -> Report:
  """Colours every page of every job, `concurrency` pages at a time, with a progress bar;
  on_page(done, total) is called in the caller's thread after each page (the web page's
  progress bar)."""
  from tqdm import tqdm
  report = Report()
  todo = []
  for job in jobs:
    if os.path.exists(job.output) and not overwrite:
      report.skipped_existing.append(job.output)
      continue
    if job.is_archive:
      try:
        _list_archive(job)
      except archives.ArchiveError as e:
        report.failed[job.source] = str(e)
        continue
      for name, reason in job.refused.items():
        report.failed[page_label(job.source, name)] = reason
    todo.append(job)
  total = sum(len(job.entries) if job.is_archive else 1 for job in todo)
  results: dict[tuple[int, str | None], bytes] = {}
  lock = threading.Lock()
  workers = max(1, concurrency)

  def inputs():
    """(job, entry name or None, ArchiveEntry or None), in the caller's thread. Each archive is
    read once, front to back: reading its pages one by one by name re-reads the central
    directory each time, a cost that grows with the square of the pages. Single files are read by
    the worker."""
    for job in todo:
      if not job.is_archive:
        yield job, None, None
        continue
      try:
        for entry in archives.iter_entries(job.source, names=job.entries):
          yield job, entry.name, entry
      except archives.ArchiveError as e:   # the whole-archive limits, met while reading
        report.failed[job.source] = str(e)

  def one(job, name, entry):
    if entry is None:
      with open(job.source, "rb") as f:
        data = f.read()
    elif entry.data is None:
      raise archives.EntryRefused(entry.reason)
    else:
      data = entry.data
    if skip_colour and safe_is_colour(data):
      with lock:
        report.kept_colour.append(page_label(job.source, name))
      return data
    if guidance:
      return colorize(data, **guidance.for_page(name or job.source))
    return colorize(data)

  bar = tqdm(total=total, desc=desc, unit="page", disable=not progress)
  finished_pages = [0]

  def collect(future, job, entry):
    try:
      data = future.result()
    except Exception as e:   # one bad page must not stop the batch; the report names it
      report.failed[page_label(job.source, entry)] = str(e)
    else:
      if entry is None:
        kept = page_label(job.source, entry) in report.kept_colour
        out = job.output if not kept else kept_colour_name(job.output, job.source)
        write_atomic(out, data)
        report.done.append(out)
      else:
        results[(id(job), entry)] = data
    bar.update(1)
    finished_pages[0] += 1
    if on_page is not None:
      on_page(finished_pages[0], total)

  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    pending = {}   # at most 2 pages per worker read ahead, so an archive is never all in memory
    for job, name, entry in inputs():
      while len(pending) >= 2 * workers:
        finished, _ = concurrent.futures.wait(
            pending, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in finished:
          collect(future, *pending.pop(future))
      pending[pool.submit(one, job, name, entry)] = (job, name)
    for future in concurrent.futures.as_completed(pending):
      collect(future, *pending[future])
  bar.close()
  for job in todo:
    if job.is_archive and job.source not in report.failed:
      _write_archive(job, results, report)
  return report


def _write_archive(job: Job, results: dict, report: Report) -> None:
  """The coloured archive by `serving.cbz`'s rule: the pages that were coloured or kept, the
  other entries copied; refused pages are already in the report."""
  done = {e: results[(id(job), e)] for e in job.entries if (id(job), e) in results}
  pages = len(job.entries) + sum(1 for name in job.refused if is_page_name(name))
  reason = cbz.not_written(pages, len(done))
  if reason:
    report.failed[job.source] = reason
    return
  try:
    with atomic_file(job.output) as out:
      refused = cbz.write(job.source, out, done)
  except archives.ArchiveError as e:   # atomic_file has removed what was written
    report.failed[job.source] = str(e)
    return
  for name, why in refused:
    report.failed[page_label(job.source, name)] = why
  report.done.append(job.output)
