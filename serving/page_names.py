"""Which files are pages, and what their outputs are called: the rules every tool that colours
a folder follows (the client, batch_colorize and the Streamlit page through serving.pages, and
the Beam batch job, serving.beam_colorize).

Why one module: users expect a folder, a .cbz and a rerun to come out the same whichever tool
coloured them, and a rerun finds exactly what an earlier run wrote only if every tool names its
outputs by one rule.

  * a page is a file with one of the served model's formats (`koala.images.FORMATS`), not a
    hidden file; a .cbz is an archive of pages.
  * a page -> <its relative path>.png; a .cbz keeps its name, each coloured page inside under
    its own stem (.png), since readers sort pages by name; a page already in colour is copied
    unchanged under its own extension.
  * a page inside an archive is named `archive.cbz!entry` in every report (`page_label`).
  * no page is lost to a name (`clashes`): two inputs whose outputs would have one name,
    compared without case as macOS, Windows and comic readers compare names (`001.png` and
    `001.jpg`, `x.png` and `x.PNG`), stop the run before any page is coloured, with a sentence
    naming both; inside a .cbz, the same two entries refuse that archive.
"""
from __future__ import annotations

import os
from typing import Iterable

from koala import images

IMAGE_EXTENSIONS = images.PAGE_EXTENSIONS   # koala.images.FORMATS, the pipeline's formats too
ARCHIVE_EXTENSIONS = (".cbz",)


def is_page_name(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def is_archive_name(name: str) -> bool:
  return name.lower().endswith(ARCHIVE_EXTENSIONS)


def page_label(source: str, entry: str | None = None) -> str:
  """How reports name a page: its file, or `archive.cbz!entry` for a page inside an archive."""
  return f"{source}!{entry}" if entry else source


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
