"""The one guarded reader of .cbz (zip) archives: every path that opens a comic archive uses it
(the client, batch_colorize and the Streamlit page through serving.pages, the Beam batch job).

Why: a .cbz is a zip, and a zip is a promise about sizes that its author writes. A 3 MB archive
whose single page inflates to gigabytes of zeros ("zip bomb") took the batch job to 20 GB of
memory when pages were read with `ZipFile.read`, which inflates a whole entry at once. Python's
zipfile documentation lists the pitfalls ("Decompression pitfalls": memory or disk volume,
entries that escape the folder); PIL's answer to the image version of the problem is to check
the declared size before decoding (`Image.MAX_IMAGE_PIXELS`, `DecompressionBombError`). Here:

  * per entry: the declared size must be within `max_entry_bytes`, and the bytes are inflated in
    chunks and the read stops as soon as they pass the cap (the declared size is never trusted
    alone). A refused entry comes back with `data=None` and a `reason` that names it; the others
    are read as usual.
  * entry names that escape the folder (`../x`, `/etc/x`, `C:\\x`) are refused the same way.
  * for the archive as a whole: at most `max_entries` entries and `max_total_bytes` inflated
    bytes (declared up front, and counted while reading); past either, `ArchiveError`.
  * two entries of one name, compared without case (`001.png` twice, or `001.png` and
    `001.PNG`), refuse the archive (`ArchiveError` naming both): which of them a comic reader or
    an unzip shows is up to it, so no page of such an archive can be trusted to be the one meant.

The page byte cap is the serving request cap (`serving.server --max_request_bytes`): a page
larger than that could not be served anyway.
"""
from __future__ import annotations

import dataclasses
import os
import zipfile
from typing import BinaryIO, Iterable, Iterator

MAX_PAGE_BYTES = 64 * 1024 * 1024   # one page file; also the server's default request body cap
MAX_ENTRIES = 10_000                # a thick volume has a few hundred pages
MAX_TOTAL_BYTES = 4 * 1024 ** 3     # every entry inflated, all together
_CHUNK = 1 << 20


class ArchiveError(ValueError):
  """The archive as a whole is refused (not a zip, too many entries, too many total bytes)."""


class EntryRefused(ValueError):
  """One entry is refused (`read_entry`); the message is the reason and names the entry."""


@dataclasses.dataclass(frozen=True)
class ArchiveLimits:
  max_entry_bytes: int = MAX_PAGE_BYTES
  max_entries: int = MAX_ENTRIES
  max_total_bytes: int = MAX_TOTAL_BYTES


@dataclasses.dataclass(frozen=True)
class ArchiveEntry:
  name: str
  data: bytes | None           # None when refused
  reason: str | None           # why refused (names the entry), None when read


@dataclasses.dataclass(frozen=True)
class Member:
  """A file entry as the central directory declares it, before any byte is inflated."""
  name: str
  declared_bytes: int
  reason: str | None           # why it will be refused without reading, None when readable


def unsafe_name_reason(name: str, folder: str = "the archive's folder") -> str | None:
  """Why a relative name (a zip entry's, a gs:// object's below a prefix) would escape the
  folder it is written to, or None when it is safe."""
  path = name.replace("\\", "/")
  if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
    return f"{name}: absolute path, refused (it would escape {folder})"
  if ".." in path.split("/"):
    return f"{name}: '..' in the path, refused (it would escape {folder})"
  if "\x00" in path:
    return f"{name}: NUL in the name, refused"
  return None


def local_path(local_dir: str, rel: str, source: str) -> str:
  """Where an object named `rel` below a prefix (a gs:// export copied to a worker) is written
  under local_dir. Object names are whatever their writer chose ('a/../../x' is a valid one): a
  name that would escape local_dir ('..', an absolute path) is refused, ValueError naming
  `source`."""
  reason = unsafe_name_reason(rel, local_dir)
  if reason:
    raise ValueError(f"{source}: {reason}")
  return os.path.join(local_dir, *rel.split("/"))


def _open(source) -> zipfile.ZipFile:
  try:
    return zipfile.ZipFile(source)
  except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
    raise ArchiveError(f"not a readable .cbz (zip) archive: {e}") from None


def _members(zf: zipfile.ZipFile, limits: ArchiveLimits) -> list[tuple[zipfile.ZipInfo, Member]]:
  infos = [i for i in zf.infolist() if not i.is_dir()]
  if len(infos) > limits.max_entries:
    raise ArchiveError(f"{len(infos)} entries, more than the limit of {limits.max_entries}")
  seen: dict[str, str] = {}
  for info in infos:
    key = info.filename.replace("\\", "/").casefold()
    if key in seen:
      raise ArchiveError(f"two entries named {seen[key]!r} and {info.filename!r} (names "
                         "compared without case): which one a reader shows is up to the "
                         "reader, so the archive is refused")
    seen[key] = info.filename
  out, declared_total = [], 0
  for info in infos:
    reason = unsafe_name_reason(info.filename)
    if reason is None and info.file_size > limits.max_entry_bytes:
      reason = (f"{info.filename}: declares {info.file_size} bytes inflated, more than the page "
                f"cap of {limits.max_entry_bytes} bytes (a zip bomb?), refused")
    if reason is None and info.flag_bits & 0x1:
      reason = f"{info.filename}: encrypted, refused"
    if reason is None:
      declared_total += info.file_size
    out.append((info, Member(info.filename, info.file_size, reason)))
  if declared_total > limits.max_total_bytes:
    raise ArchiveError(f"its entries declare {declared_total} bytes inflated in all, more than "
                       f"the limit of {limits.max_total_bytes}")
  return out


def members(source: str | os.PathLike | BinaryIO, *,
            limits: ArchiveLimits = ArchiveLimits()) -> list[Member]:
  """Every file entry, in archive order, with the reason it would be refused (names, declared
  sizes); raises ArchiveError for the whole-archive limits. Inflates nothing."""
  with _open(source) as zf:
    return [m for _, m in _members(zf, limits)]


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> tuple[bytes | None, str | None]:
  """Inflates in 1 MiB chunks and stops as soon as the bytes pass `cap`."""
  chunks, got = [], 0
  try:
    with zf.open(info) as f:
      while True:
        chunk = f.read(min(_CHUNK, cap + 1 - got))
        if not chunk:
          break
        got += len(chunk)
        if got > cap:
          return None, (f"{info.filename}: inflates past the page cap of {cap} bytes (a zip "
                        "bomb?), refused; reading stopped there")
        chunks.append(chunk)
  except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError,
          ValueError) as e:   # bad CRC, truncated data, unknown compression, a password
    return None, f"{info.filename}: unreadable entry: {e}"
  except Exception as e:   # zlib.error and friends from the decompressors
    return None, f"{info.filename}: unreadable entry: {type(e).__name__}: {e}"
  return b"".join(chunks), None


def iter_entries(source, *, limits: ArchiveLimits = ArchiveLimits(),
                 names: Iterable[str] | None = None) -> Iterator[ArchiveEntry]:
  """source: a path or a binary file object of a .cbz/.zip; yields every file entry (or only
  `names`) in archive order; refuses entries whose declared size or actually-inflated bytes pass
  the cap (read streaming, stop at the cap, never trust the declared size alone), names that
  escape the folder ('../', absolute); raises ArchiveError for the whole-archive limits.

  A name in `names` that the archive does not hold comes last, refused as missing."""
  wanted = None if names is None else list(dict.fromkeys(names))
  with _open(source) as zf:
    listed = _members(zf, limits)
    total = 0
    for info, member in listed:
      if wanted is not None and member.name not in wanted:
        continue
      if member.reason is not None:
        yield ArchiveEntry(member.name, None, member.reason)
        continue
      data, reason = _read_capped(zf, info, min(limits.max_entry_bytes, limits.max_total_bytes))
      if data is not None:
        total += len(data)
        if total > limits.max_total_bytes:
          raise ArchiveError(f"inflates past the limit of {limits.max_total_bytes} bytes in all "
                             f"(at {member.name})")
      yield ArchiveEntry(member.name, data, reason)
    if wanted is not None:
      present = {m.name for _, m in listed}
      for name in wanted:
        if name not in present:
          yield ArchiveEntry(name, None, f"{name}: no such entry in the archive")


def read_entry(source, name: str, *, limits: ArchiveLimits = ArchiveLimits()) -> bytes:
  """One entry's bytes; raises EntryRefused (naming the entry) when it is refused, and
  ArchiveError for the whole-archive limits."""
  for entry in iter_entries(source, limits=limits, names=[name]):
    if entry.data is None:
      raise EntryRefused(entry.reason)
    return entry.data
  raise EntryRefused(f"{name}: no such entry in the archive")   # not reached: iter_entries says so
