"""The page rules that serving (the REST client, batch_colorize) and the batch job
(pipeline.colorize) share: which files are pages, how outputs and archive entries are named,
when a page is already in colour, how guidance files are matched to pages, and how an output
is written whole.

Why here: users expect a folder, a .cbz and a rerun to come out the same whichever tool
coloured them, so the rules live once, and pipeline/ and serving/ meet only in koala/.

  * a page is a file with one of the served model's formats (`koala.images.FORMATS`), not a
    hidden file; a .cbz is an archive of pages.
  * a page -> <its relative path>.png; a .cbz keeps its name, each coloured page inside under
    its own stem (.png), since readers sort pages by name; a page already in colour is copied
    unchanged under its own extension.
  * no page is lost to a name (`clashes`): two inputs whose outputs would have one name,
    compared without case as macOS, Windows and comic readers compare names (`001.png` and
    `001.jpg`, `x.png` and `x.PNG`), stop the run before any page is coloured, with a sentence
    naming both; inside a .cbz, the same two entries refuse that archive. Outputs are named
    by the one rule above, so a rerun finds exactly what an earlier run wrote.
  * an input tree is read as it is: a symbolic link that leads outside it is skipped and
    reported (`outside_root`), so a shared folder cannot make a tool read other files.
  * outputs are written whole (`atomic_file`): a file of a random name made by `tempfile`
    (O_EXCL, never through a link planted in the folder), renamed into place.
  * a page is in colour by the pipeline's own gray test (`koala.gray`).
  * guidance (`Guidance`): a folder of hint images, one per page, matched by file stem (a page
    without one is coloured with no hints), and one reference image for every page. A hint file
    is read when its page is coloured, so a bad one fails that page only, and the error names it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from typing import Callable, Iterable

from koala import gray, images

IMAGE_EXTENSIONS = images.PAGE_EXTENSIONS   # koala.images.FORMATS, the pipeline's formats too
ARCHIVE_EXTENSIONS = (".cbz",)


def is_page_name(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def output_name(relative_path: str) -> str:
  """The output's name for an input's path relative to the input folder: a page -> .png, a
  .cbz keeps its name (the batch job on Dataflow names its outputs by this rule too)."""
  stem, ext = os.path.splitext(relative_path)
  return relative_path if ext.lower() in ARCHIVE_EXTENSIONS else stem + ".png"


def kept_colour_name(output: str, source: str) -> str:
  """Where a page that is already in colour goes: its coloured output's name with the source's
  own extension, since its bytes are copied unchanged."""
  return os.path.splitext(output)[0] + os.path.splitext(source)[1]


def archive_entry_name(entry: str, data: bytes) -> str:
  """A page's name inside the coloured .cbz: a coloured (PNG) page is renamed to .png; a page
  kept in colour keeps its name. Readers sort pages by name, so the stem never changes."""
  return entry if data[:8] != b"\x89PNG\r\n\x1a\n" else os.path.splitext(entry)[0] + ".png"


def is_colour(data: bytes) -> bool:
  """True when a page is already in colour, by the pipeline's own gray test."""
  return gray.is_colour(images.decode_image(data))


def safe_is_colour(data: bytes) -> bool:
  try:
    return is_colour(data)
  except Exception:   # undecodable here: let the model's own decoder give the error
    return False


class NameClash(ValueError):
  """Two inputs (or two entries of one .cbz) would be written under one name."""


def clashes(outputs: Iterable[tuple[str, str]], what: str = "Inputs") -> str | None:
  """outputs: (input, the name its output gets). A sentence naming every two inputs whose
  outputs have one name compared without case, or None when each has its own."""
  first: dict[str, tuple[str, str]] = {}
  found = []
  for source, output in outputs:
    key = output.replace("\\", "/").casefold()
    if key not in first:
      first[key] = (source, output)
    elif first[key][0] != source:
      found.append(f"{first[key][0]} and {source} (both {first[key][1]})")
  if not found:
    return None
  shown = "; ".join(found[:10]) + (f"; and {len(found) - 10} more" if len(found) > 10 else "")
  return (f"{what} that would be written under one name (names are compared without case): "
          f"{shown}. Rename one of each pair, so that no page is lost.")


def check_outputs(outputs: Iterable[tuple[str, str]]) -> None:
  """NameClash with `clashes`' sentence, before any page is coloured."""
  sentence = clashes(outputs)
  if sentence:
    raise NameClash(sentence)


def entry_clashes(entries: Iterable[str]) -> str | None:
  """`clashes` for the entries of one .cbz (pages by their coloured names, others by theirs):
  the reason the archive is refused, or None."""
  sentence = clashes(((e, output_name(e) if is_page_name(e) else e) for e in entries),
                     "Entries of the archive")
  return sentence and f"{sentence} The archive was not coloured."


def outside_root(path: str, root: str) -> str | None:
  """Why a local file found under `root` is not read (a symbolic link that leads outside the
  root, or through one), or None."""
  target, real_root = os.path.realpath(path), os.path.realpath(root)
  if target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep):
    return None
  return (f"a symbolic link to {target}, outside the input folder {root}: skipped (an input "
          "tree is read as it is, never through links that leave it)")


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


def _read_local(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def _list_local(folder: str) -> list[str]:
  if not os.path.isdir(folder):
    raise ValueError(f"hints folder {folder}: no such folder")
  return [os.path.join(folder, name) for name in os.listdir(folder)]


@dataclasses.dataclass
class Guidance:
  """The user's colour guidance for a batch: hint images by page stem, one reference image.
  Files are read by `read` and folders listed by `list_files` (the local disk by default; the
  batch job passes Beam's file system's, so gs:// hints follow the same rules)."""
  hints: dict[str, str] = dataclasses.field(default_factory=dict)     # page stem -> hint path
  reference: bytes | None = None
  read: Callable[[str], bytes] = _read_local

  @classmethod
  def load(cls, hints_dir: str | None = None, reference: str | bytes | None = None, *,
           read: Callable[[str], bytes] = _read_local,
           list_files: Callable[[str], list[str]] = _list_local) -> "Guidance":
    """Indexes hints_dir's images by stem and reads the reference; ValueError names what is
    wrong (a missing folder, two hint files for one stem, a reference that is not an image)."""
    hints = {}
    if hints_dir is not None:
      for path in sorted(list_files(hints_dir), key=os.path.basename):
        name = os.path.basename(path)
        if is_page_name(name):
          stem = os.path.splitext(name)[0]
          if stem in hints:
            raise ValueError(f"hints folder {hints_dir}: two hint files for pages named {stem!r} "
                             f"({os.path.basename(hints[stem])} and {name})")
          hints[stem] = path
    if isinstance(reference, str):
      try:
        reference = read(reference)
      except OSError as e:
        raise ValueError(f"reference {reference}: {e.strerror or e}") from None
    if reference is not None:
      try:
        images.image_size(reference)
      except images.ImageError as e:
        raise ValueError(f"reference: {e}") from None
    return cls(hints, reference, read)

  def __bool__(self) -> bool:
    return bool(self.hints) or self.reference is not None

  def hint_path(self, page_name: str) -> str | None:
    """The hint file of a page file or archive entry (by its file stem), or None."""
    return self.hints.get(os.path.splitext(os.path.basename(page_name))[0])

  def for_page(self, page_name: str) -> dict:
    """{"hints": bytes or None, "reference": bytes or None} for a page file or archive entry;
    ValueError, naming the hint file, when it cannot be read or is not an image."""
    path = self.hint_path(page_name)
    hints = None
    if path is not None:
      try:
        hints = self.read(path)
        images.image_size(hints)
      except (OSError, images.ImageError) as e:
        raise ValueError(f"hints file {path}: {getattr(e, 'strerror', None) or e}") from None
    return {"hints": hints, "reference": self.reference}
