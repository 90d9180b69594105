"""The user's colour guidance for a batch of pages, read from files: a folder of hint images,
one per page, matched by file stem (a page without one is coloured with no hints), and one
reference image for every page.

Why here: the client, batch_colorize (through serving.pages) and the Beam batch job
(serving.beam_colorize, through Beam's file system, so gs:// works) match hint files to pages
by this one rule, so a page gets the same hints, and the same PNG, from each. A hint file is
read when its page is coloured, so a bad one fails that page only, and the error names it.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

from koala import images
from serving.page_names import is_page_name


def _read_local(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def _list_local(folder: str) -> list[str]:
  if not os.path.isdir(folder):
    raise ValueError(f"hints folder {folder}: no such folder")
  return [os.path.join(folder, name) for name in os.listdir(folder)]


@dataclasses.dataclass
class PageGuidance:
  """The user's colour guidance for a batch of pages: hint images by page stem, one reference
  image. (trainer.input.ExampleGuidance is another thing: how training draws hints.)
  Files are read by `read` and folders listed by `list_files` (the local disk by default; the
  batch job passes Beam's file system's, so gs:// hints follow the same rules)."""
  hints: dict[str, str] = dataclasses.field(default_factory=dict)     # page stem -> hint path
  reference: bytes | None = None
  read: Callable[[str], bytes] = _read_local

  @classmethod
  def load(cls, hints_dir: str | None = None, reference: str | bytes | None = None, *,
           read: Callable[[str], bytes] = _read_local,
           list_files: Callable[[str], list[str]] = _list_local) -> "PageGuidance":
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
