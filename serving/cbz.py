"""The one writer of coloured .cbz archives, and its rule, for every tool that colours one: the
client, batch_colorize and the Streamlit page (through serving.pages) and the Beam batch job
(serving.beam_colorize).

The rule: a coloured .cbz holds, in the source's entry order, every page of it that was
coloured (as PNG, under its own stem: readers sort pages by name) or kept because it is already
in colour (unchanged, under its own name), and every entry that is not a page (ComicInfo.xml)
copied. A page that was refused, by the archive reader (a zip bomb, a name that escapes the
folder), as not an image, by the model, for a bad hint file or because its request failed, is
left out and reported by its `archive.cbz!entry` label; the other pages are written. An archive
of which no page was coloured or kept is not written.

Why this rule: bad input gets a clear error and loses nothing else. A volume with one unreadable
page still gives its reader the other pages, whichever tool coloured it; and the batch job,
which spreads one volume's pages over many workers, could not hold an archive back for one page
without gathering every refusal too. The price: a coloured archive that exists counts as done,
so a rerun does not retry its refused pages; delete the archive's output (or pass the client
--overwrite) once the cause is fixed.
"""
from __future__ import annotations

import contextlib
import zipfile
from typing import BinaryIO, Mapping

from serving import archives
from serving.page_names import archive_entry_name, is_page_name

NO_PAGES = "the archive holds no pages to colour; it was not written"
NOTHING_COLOURED = ("no page of the archive was coloured (each one's reason is reported); the "
                    "archive was not written")


def not_written(pages_in_archive: int, pages_done: int) -> str | None:
  """Why an archive is not written (a sentence), or None when it is: the rule's last clause."""
  if pages_done:
    return None
  return NO_PAGES if not pages_in_archive else NOTHING_COLOURED


def write(source, out: BinaryIO, pages: Mapping[str, bytes]) -> list[tuple[str, str]]:
  """Writes the coloured archive of `source` (a path or a seekable binary file) into `out`.

  pages: entry name -> the page's coloured (PNG) or kept bytes; pages of the source that are
  not in it are left out. Returns (entry, reason) for each entry that is not a page and that
  the reader refused once inflated (left out as well). ArchiveError for the whole-archive
  limits (`serving.archives`)."""
  members = archives.members(source)
  others = [m.name for m in members
            if not m.reason and m.name not in pages and not is_page_name(m.name)]
  copied = set(others)
  refused = []
  copies = archives.iter_entries(source, names=others)   # archive order, as `members`
  with contextlib.closing(copies), zipfile.ZipFile(out, "w") as dst:
    for member in members:
      if member.name in pages:
        data = pages[member.name]
        dst.writestr(archive_entry_name(member.name, data), data,
                     compress_type=zipfile.ZIP_STORED)
      elif member.name in copied:
        entry = next(copies)
        if entry.data is None:    # refused only once inflated
          refused.append((entry.name, entry.reason))
        else:
          dst.writestr(entry.name, entry.data, compress_type=zipfile.ZIP_DEFLATED)
  return refused
