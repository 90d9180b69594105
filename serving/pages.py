"""What the client and the in-process batch tool share: finding pages, naming outputs, .cbz
archives, skipping colour pages, and running one colorize function over everything with a
progress bar.

Why one module: `serving.client` colours pages through a REST server and
`serving.inference.batch_colorize` through an in-process SavedModel, but users expect the two to
treat folders, archives and reruns identically. Only the `colorize(bytes) -> png bytes` function
differs. The page rules below (names, the colour-page test, guidance) are `koala.pages`', which
the batch job (pipeline.colorize) follows too; this module walks local folders and archives by
them.

Rules:
  * a file -> <output_dir>/<stem>.png; a folder -> the same relative tree under output_dir;
    a .cbz -> <output_dir>/<stem>.cbz with every page coloured (as PNG) and every other entry
    (ComicInfo.xml, ...) copied.
  * two inputs whose outputs would share a name (compared without case) stop the run before
    any page is coloured (`koala.pages.NameClash`, naming both); two such entries of one .cbz
    fail that archive. A symbolic link in a folder that leads outside it is skipped and
    reported as a problem.
  * an output that exists already is skipped, so a rerun resumes; outputs are written to a
    temporary name and renamed, so an interrupted run never leaves a half file to be skipped.
  * with skip_colour, pages that are already in colour are copied unchanged, by the same test
    the pipeline uses to call an image gray (`koala.gray`).
  * archives are read only through `koala.archives` (page byte cap, streaming, no names that
    escape the folder): a refused entry is reported with its reason and left out of the coloured
    archive (a rerun would refuse it again), and the other pages go through.
  * guidance (`Guidance`): a folder of hint images, one per page, matched by file stem (a page
    without one is coloured with no hints), and one reference image for every page. A hint file
    is read when its page is coloured, so a bad one fails that page only, and the report names
    it; the colorize function is then called as colorize(data, hints=..., reference=...).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
import threading
import zipfile
from typing import Callable

from koala import archives
# The page rules themselves are koala.pages' (the batch job's too); named here as well, since
# callers of serving.pages have always found them here.
from koala.pages import (ARCHIVE_EXTENSIONS, IMAGE_EXTENSIONS, Guidance,  # noqa: F401
                         NameClash, archive_entry_name, atomic_file, check_outputs,
                         entry_clashes, is_colour, is_page_name, kept_colour_name, output_name,
                         outside_root, safe_is_colour, write_atomic)


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
                 if is_page_name(name) or name.lower().endswith(ARCHIVE_EXTENSIONS)]
        for path in links + pages:
          reason = outside_root(path, item)
          if reason:
            problems.append(f"{path}: {reason}")
          elif path in pages:
            rel = os.path.relpath(path, item)
            jobs.append(_job(path, os.path.join(output_dir, output_name(rel))))
    elif os.path.isfile(item):
      if is_page_name(item) or item.lower().endswith(ARCHIVE_EXTENSIONS):
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
  if path.lower().endswith(ARCHIVE_EXTENSIONS):
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
        desc: str = "colorizing", guidance: Guidance | None = None,
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
        report.failed[f"{job.source}!{name}"] = reason
    todo.append(job)
  total = sum(len(job.entries) if job.is_archive else 1 for job in todo)
  results: dict[tuple[int, str | None], bytes] = {}
  lock = threading.Lock()
  workers = max(1, concurrency)

  def label(job, entry):
    return f"{job.source}!{entry}" if entry else job.source

  def inputs():
    """(job, entry name or None, ArchiveEntry or None), in the caller's thread. Each archive is
    read once, front to back: reading its pages one by one by name re-reads the central
    directory each time, which cost 18.5 s of CPU for 2,000 pages. Single files are read by the
    worker."""
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
        report.kept_colour.append(label(job, name))
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
      report.failed[label(job, entry)] = str(e)
    else:
      if entry is None:
        kept = label(job, entry) in report.kept_colour
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
  if not job.entries and job.refused:
    report.failed[job.source] = "no page could be read; the archive was not written"
    return
  missing = [e for e in job.entries if (id(job), e) not in results]
  if missing:
    report.failed[job.source] = (f"{len(missing)} of {len(job.entries)} pages failed; "
                                 "the archive was not written")
    return
  pages = set(job.entries)
  try:
    members = archives.members(job.source)
    others = [m.name for m in members if m.name not in pages and not m.reason]
    copies = archives.iter_entries(job.source, names=others)   # archive order, as `members`
    with contextlib.closing(copies), atomic_file(job.output) as out, \
        zipfile.ZipFile(out, "w") as dst:
      for member in members:
        if member.name in pages:
          data = results[(id(job), member.name)]
          dst.writestr(archive_entry_name(member.name, data), data,
                       compress_type=zipfile.ZIP_STORED)
        elif not member.reason:   # ComicInfo.xml and other non-pages, copied
          entry = next(copies)
          if entry.data is None:    # refused only once inflated
            report.failed[f"{job.source}!{entry.name}"] = entry.reason
          else:
            dst.writestr(entry.name, entry.data, compress_type=zipfile.ZIP_DEFLATED)
  except archives.ArchiveError as e:   # atomic_file has removed what was written
    report.failed[job.source] = str(e)
    return
  report.done.append(job.output)
