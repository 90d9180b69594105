"""One press of the Streamlit page's Colorize button: a visitor's uploads through the model, within
the operator's caps (`serving.web_config.Caps`), into what the page shows and keeps.

Why a module of its own: the page is shared, and what one visitor sends must not exhaust the
host for the others (a few kilobytes of compressed uploads can decode to hundreds of megabytes:
docs/benchmarks.md, "The web page under a visitor's uploads"). So, besides turning every failure
into a sentence:

  * one model run at a time per process (`RUNS`): Streamlit runs every session in one process,
    and each run holds a page's worth of graph memory; the others wait their turn, told so.
  * files per run, pages per .cbz (from the archive's central directory, before anything is
    inflated) and pixels per run (from each page's header, before it is decoded) are refused
    with a sentence before they cost a model call.
  * what a session keeps is the download and previews at most PREVIEW_WIDTH wide, PNG bytes:
    not the uploads again, not full-size pages that Streamlit would decode and scale on every
    rerun. It is counted against the session's cap; a result that does not fit is dropped and
    says so.

The colouring itself is serving.pages (the client's and the batch tool's code), so the page
cannot drift from them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import tempfile
import threading
from typing import Callable

from koala.images import DEFAULT_MAX_PIXELS as MAX_PIXELS   # the export's own cap, per page
from serving.web_config import Caps

PREVIEW_WIDTH = 420              # pixels; previews are made this wide, or narrower
MAX_PREVIEW_PAGES = 8            # pages of a .cbz shown side by side (all are coloured)


class UserError(Exception):
  """A failure the user can act on; the message is shown as it is."""


@dataclasses.dataclass
class Output:
  """What became of one uploaded file, as the session keeps it."""
  name: str
  is_archive: bool
  # (page, input, colour) as small PNGs: a page, or an archive's first MAX_PREVIEW_PAGES
  previews: list[tuple[str, bytes, bytes]] = dataclasses.field(default_factory=list)
  download: bytes | None = None          # the coloured PNG or .cbz
  download_name: str = ""
  errors: list[str] = dataclasses.field(default_factory=list)
  pages_total: int = 0                   # pages in an archive (only some are previewed)

  @property
  def held_bytes(self) -> int:
    return len(self.download or b"") + sum(len(a) + len(b) for _, a, b in self.previews)


class RunQueue:
  """One model run at a time in this process; the others wait, and are told how many wait."""

  def __init__(self):
    self._run = threading.Lock()
    self._count = threading.Lock()
    self.waiting = 0

  @contextlib.contextmanager
  def turn(self, on_wait: Callable[[int], None] = lambda others: None):
    """Waits for the turn, calling on_wait(others waiting) every half second; a Streamlit
    rerun or stop raised from on_wait leaves the queue as it found it."""
    with self._count:
      self.waiting += 1
    try:
      while not self._run.acquire(timeout=0.5):
        on_wait(self.waiting - 1)
    finally:
      with self._count:
        self.waiting -= 1
    try:
      yield
    finally:
      self._run.release()


RUNS = RunQueue()


def first_line(e: Exception) -> str:
  """The first line of an error, without Python object addresses (<_io.BytesIO at 0x...>)."""
  text = re.sub(r"<[\w.]+ object at 0x[0-9a-fA-F]+>", "the file", str(e).strip())
  return (text or type(e).__name__).splitlines()[0][:500]


def checked(colorize, pixels_per_run: int):
  """Refuses what is not an image, is too large, or passes the run's pixel budget, from the
  header, before it costs a model call."""
  from koala import images
  left = [pixels_per_run]
  lock = threading.Lock()

  def run(data: bytes, **guidance) -> bytes:
    try:
      height, width = images.image_size(data)
    except images.ImageError as e:
      raise UserError(f"not an image Koala can read: {first_line(e)}") from None
    pixels = images.decoded_pixels(data, height, width)   # all of a GIF's frames count
    if pixels > MAX_PIXELS:
      frames = "" if pixels == height * width else " in all its GIF frames"
      raise UserError(f"page too large: {width} x {height}{frames} = {pixels / 1e6:.0f} Mpx; "
                      f"the limit is {MAX_PIXELS / 1e6:.0f} Mpx. Scale it down and try again.")
    with lock:
      fits = pixels <= left[0]
      left[0] -= pixels if fits else 0
    if not fits:
      raise UserError(f"not coloured: the pages of this run pass this page's limit of "
                      f"{pixels_per_run / 1e6:g} Mpx per run. Colour it in another run.")
    try:
      return colorize(data, **guidance)
    except UserError:
      raise
    except Exception as e:   # the model's or the server's refusal, as one readable line
      raise UserError(first_line(e)) from None
  return run


class UploadGuidance:
  """serving.pages' guidance for uploads: hint images by upload folder, one reference."""

  def __init__(self, hints: dict[int, bytes], reference: bytes | None):
    self.hints = hints              # upload index -> hint PNG
    self.reference = reference
    self.in_dir = ""

  def __bool__(self) -> bool:
    return bool(self.hints) or self.reference is not None

  def for_page(self, source: str) -> dict:
    folder = os.path.relpath(source, self.in_dir).split(os.sep)[0]
    return {"hints": self.hints.get(int(folder)) if folder.isdigit() else None,
            "reference": self.reference}


def _too_many_pages(name: str, data: bytes, caps: Caps) -> str | None:
  """Why a .cbz upload is refused for its page count (central directory only), or None."""
  from serving import archives, page_names
  try:
    members = archives.members(io.BytesIO(data))
  except archives.ArchiveError:
    return None                   # serving.pages says why, as for the client
  count = sum(1 for m in members if not m.reason and page_names.is_page_name(m.name))
  if count > caps.pages_per_cbz:
    return (f"{name}: {count} pages; this page colours at most {caps.pages_per_cbz} pages of a "
            ".cbz in one run. Split the archive, or use the command-line client.")
  return None


def colorize_uploads(uploads: list[tuple[str, bytes]], colorize, caps: Caps = Caps(), *,
                     skip_colour: bool = False, guidance: UploadGuidance | None = None,
                     on_page: Callable[[int, int], None] | None = None) -> list[Output]:
  """Colours every uploaded page and archive through serving.pages (as the client does)."""
  from serving import page_names, pages
  if len(uploads) > caps.files_per_run:
    raise UserError(f"{len(uploads)} files; this page colours at most {caps.files_per_run} in "
                    "one run. Remove some and press Colorize again.")
  results = [Output(name=name, is_archive=name.lower().endswith(".cbz")) for name, _ in uploads]
  with tempfile.TemporaryDirectory(prefix="koala-streamlit-") as tmp:
    in_dir, out_dir = os.path.join(tmp, "in"), os.path.join(tmp, "out")
    sources = {}
    for i, (name, data) in enumerate(uploads):
      refused = _too_many_pages(name, data, caps) if results[i].is_archive else None
      if refused:
        results[i].errors.append(refused)
        continue
      # Each upload in its own folder: two uploads may share a name.
      folder = os.path.join(in_dir, f"{i:03d}")
      os.makedirs(folder)
      sources[i] = os.path.join(folder, os.path.basename(name) or f"upload{i}")
      with open(sources[i], "wb") as f:
        f.write(data)
    jobs, _ = pages.find_jobs([in_dir], out_dir) if sources else ([], [])
    if guidance is not None:
      guidance.in_dir = in_dir
    report = pages.run(jobs, checked(colorize, caps.pixels_per_run), concurrency=1,
                       skip_colour=skip_colour, overwrite=True, progress=False,
                       guidance=guidance, on_page=on_page)
    by_source = {job.source: job for job in jobs}
    held = 0
    for i, (name, data) in enumerate(uploads):
      result = results[i]
      if i not in sources:
        continue
      job = by_source.get(sources[i])
      if job is None:
        result.errors.append(f"{name}: not a page ({', '.join(page_names.IMAGE_EXTENSIONS)}) or a "
                             ".cbz archive")
        continue
      _collect_errors(job.source, name, report, result)
      if job.is_archive:
        _collect_archive(job, result)
      else:
        _collect_page(job, data, result, report)
      if held + result.held_bytes > caps.session_bytes:
        result.download, result.previews = None, []
        result.errors.append(f"{name}: coloured, but not kept: the results of this run pass "
                             f"this page's limit of {caps.session_bytes / 2 ** 20:g} MB per "
                             "visitor. Colour fewer or smaller pages per run.")
      held += result.held_bytes
  return results


def _collect_errors(source: str, name: str, report, result: Output) -> None:
  for label, reason in sorted(report.failed.items()):
    if label == source or label.startswith(source + "!"):
      page = label.split("!", 1)[1] if "!" in label else name
      named = page == name or reason.startswith(f"{page}: ")   # serving.archives names it
      result.errors.append(reason if named else f"{page}: {reason}")


def preview(data: bytes) -> bytes | None:
  """A PNG at most PREVIEW_WIDTH wide (area-averaged, so screentone does not turn to moiré), or
  None when Pillow cannot show it (the page itself was coloured; its download stays)."""
  from PIL import Image
  try:
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (PREVIEW_WIDTH, PREVIEW_WIDTH * img.height // max(1, img.width)))
    img = img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode)
    if img.width > PREVIEW_WIDTH:
      img = img.resize((PREVIEW_WIDTH, max(1, round(img.height * PREVIEW_WIDTH / img.width))),
                       Image.Resampling.BOX, reducing_gap=3.0)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
  except Exception:   # noqa: BLE001  (Pillow raises many kinds; a missing preview is harmless)
    return None


def _add_preview(result: Output, page: str, before: bytes, after: bytes) -> None:
  shown = preview(before), preview(after)
  if None not in shown:
    result.previews.append((page, *shown))


def _collect_page(job, data: bytes, result: Output, report) -> None:
  out = [p for p in report.done if os.path.splitext(p)[0] == os.path.splitext(job.output)[0]]
  if not out:
    return
  with open(out[0], "rb") as f:
    coloured = f.read()
  _add_preview(result, result.name, data, coloured)
  stem, ext = os.path.splitext(os.path.basename(result.name))
  kept = out[0] != job.output            # a colour page kept as it was (skip_colour)
  result.download = coloured
  result.download_name = f"{stem}_koala{ext if kept else '.png'}"


def _collect_archive(job, result: Output) -> None:
  """The first pages, before and after, through the guarded archive reader (serving.archives)."""
  from serving import archives
  if not os.path.exists(job.output):
    return
  with open(job.output, "rb") as f:
    result.download = f.read()
  result.download_name = os.path.splitext(os.path.basename(result.name))[0] + "_koala.cbz"
  shown = job.entries[:MAX_PREVIEW_PAGES]
  names = {m.name for m in archives.members(job.output)}
  out_names = {e: (os.path.splitext(e)[0] + ".png" if os.path.splitext(e)[0] + ".png" in names
                   else e) for e in shown}
  before = {e.name: e.data for e in archives.iter_entries(job.source, names=shown)}
  after = {e.name: e.data for e in archives.iter_entries(job.output, names=out_names.values())}
  for entry in shown:
    if before.get(entry) is not None and after.get(out_names[entry]) is not None:
      _add_preview(result, entry, before[entry], after[out_names[entry]])
  result.pages_total = len(job.entries)
