"""serving.archives, the guarded .cbz reader, on archives built on the spot: every refusal names
its entry and the other entries go through; the whole-archive limits raise ArchiveError."""
import contextlib
import io
import os
import zipfile

import pytest

from serving import archives
from tests import corpus

SMALL = archives.ArchiveLimits(max_entry_bytes=10_000, max_entries=5, max_total_bytes=30_000)


def cbz(entries: dict[str, bytes]) -> bytes:
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    for name, data in entries.items():
      z.writestr(name, data)
  return buf.getvalue()


def read_all(source, **kwargs):
  return [(e.name, e.data, e.reason) for e in archives.iter_entries(source, **kwargs)]


def test_every_file_entry_in_archive_order_from_a_path_or_a_file(tmp_path):
  raw = cbz({"b/002.png": b"two", "a/001.png": b"one", "ComicInfo.xml": b"<x/>"})
  path = tmp_path / "book.cbz"
  path.write_bytes(raw)
  want = [("b/002.png", b"two", None), ("a/001.png", b"one", None), ("ComicInfo.xml", b"<x/>", None)]
  assert read_all(str(path)) == want
  assert read_all(io.BytesIO(raw)) == want
  assert read_all(io.BytesIO(raw), names=["ComicInfo.xml", "b/002.png"]) == [want[0], want[2]]
  assert archives.read_entry(io.BytesIO(raw), "a/001.png") == b"one"
  with pytest.raises(archives.EntryRefused, match="nope.png: no such entry"):
    archives.read_entry(io.BytesIO(raw), "nope.png")


def test_an_entry_declaring_more_than_the_cap_is_refused_by_name_and_the_rest_go_through():
  raw = cbz({"001.png": b"ok", "002.png": bytes(50_000), "003.png": b"fine"})
  got = read_all(io.BytesIO(raw), limits=SMALL)
  assert [(n, d) for n, d, _ in got] == [("001.png", b"ok"), ("002.png", None), ("003.png", b"fine")]
  assert got[1][2].startswith("002.png: declares 50000 bytes") and "10000" in got[1][2]
  with pytest.raises(archives.EntryRefused, match="002.png"):
    archives.read_entry(io.BytesIO(raw), "002.png", limits=SMALL)


def test_a_lying_declared_size_does_not_let_the_bytes_through():
  """The central directory says 100 bytes; the data inflates to 3 MiB. Reading stops at the
  declared size, and the entry is refused (its CRC cannot match), by name."""
  raw = corpus.lying_zip({"001.png": b"ok", "002.png": bytes(3 << 20)}, "002.png", 100)
  assert [m.declared_bytes for m in archives.members(io.BytesIO(raw))] == [2, 100]
  got = read_all(io.BytesIO(raw), limits=SMALL)
  assert got[0] == ("001.png", b"ok", None)
  assert got[1][0] == "002.png" and got[1][1] is None and got[1][2].startswith("002.png: ")


@pytest.mark.parametrize("name", ["../evil.png", "a/../../evil.png", "/etc/evil.png",
                                  "C:/evil.png", "..\\evil.png"])
def test_names_that_escape_the_folder_are_refused(name):
  raw = cbz({name: b"x", "ok/001.png": b"y"})
  got = read_all(io.BytesIO(raw))
  assert got[0][:2] == (name, None) and got[0][2].startswith(f"{name}: ")
  assert got[1] == ("ok/001.png", b"y", None)


def test_whole_archive_limits_raise_archive_error(tmp_path):
  with pytest.raises(archives.ArchiveError, match="6 entries"):
    list(archives.iter_entries(io.BytesIO(cbz({f"{i}.png": b"x" for i in range(6)})), limits=SMALL))
  four = cbz({f"{i}.png": bytes(9_000) for i in range(4)})      # 36,000 declared > 30,000
  with pytest.raises(archives.ArchiveError, match="36000 bytes"):
    list(archives.iter_entries(io.BytesIO(four), limits=SMALL))
  (tmp_path / "not.cbz").write_bytes(b"PK\x03\x04 not really a zip")
  with pytest.raises(archives.ArchiveError, match="not a readable .cbz"):
    archives.members(str(tmp_path / "not.cbz"))


def test_a_bomb_is_refused_without_inflating_it(tmp_path):
  """A 256 MiB entry of zeros (about 1 MB compressed), with the default page cap of 64 MiB."""
  path = corpus.zip_bomb(str(tmp_path / "bomb.cbz"), "001.png", 256 << 20,
                         others={"000.png": b"page"})
  got = read_all(str(path))
  assert got[0] == ("000.png", b"page", None)
  assert got[1][:2] == ("001.png", None) and "page cap" in got[1][2]


def test_serving_pages_colours_the_good_pages_and_reports_the_refused_ones(tmp_path):
  """serving.pages (the client's, batch_colorize's and the Streamlit page's archive path): a bomb
  page and a name that escapes the folder are reported by name and left out of the output
  archive; the good page and ComicInfo.xml go through. The 'colouring' here is a real PNG
  re-encode: the archive handling is under test, not the model."""
  from koala import images
  from serving import pages
  good = images.encode_png(corpus.colour_scene(0, 64, 48))
  source = tmp_path / "in" / "book.cbz"
  source.parent.mkdir()
  corpus.zip_bomb(str(source), "002.png", 80 << 20,
                  others={"ComicInfo.xml": b"<ComicInfo/>", "001.png": good, "../003.png": good})
  jobs, problems = pages.find_jobs([str(tmp_path / "in")], str(tmp_path / "out"))
  assert not problems
  report = pages.run(jobs, lambda data: images.encode_png(images.decode_image(data)),
                     progress=False)
  assert report.done == [str(tmp_path / "out" / "book.cbz")]
  assert set(report.failed) == {f"{source}!002.png", f"{source}!../003.png"}
  assert report.failed[f"{source}!002.png"].startswith("002.png: declares 83886080 bytes")
  with zipfile.ZipFile(tmp_path / "out" / "book.cbz") as z:
    assert sorted(z.namelist()) == ["001.png", "ComicInfo.xml"]


@pytest.mark.parametrize("second", ["001.png", "001.PNG"])
def test_two_entries_of_one_name_refuse_the_archive_naming_both(second):
  """A zip may hold two entries of one name (or of names a case-insensitive reader takes for
  one); which one a reader shows is up to it, so the archive is refused, by both names."""
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z, pytest.warns(UserWarning) if second == "001.png" else \
      contextlib.nullcontext():
    z.writestr("001.png", b"one")
    z.writestr(second, b"two")
  for read in (archives.members, lambda f: list(archives.iter_entries(f))):
    with pytest.raises(archives.ArchiveError, match=f"two entries named '001.png' and '{second}'"):
      read(io.BytesIO(buf.getvalue()))


def reencode(data: bytes) -> bytes:
  """The 'colouring' of the serving.pages tests: a real PNG re-encode (the archive handling is
  under test, not the model)."""
  from koala import images
  return images.encode_png(images.decode_image(data))


def test_pages_that_would_share_a_name_in_the_coloured_cbz_fail_it_on_every_run(tmp_path):
  """001.png and 001.jpg would both be 001.png in the coloured archive: the archive is refused
  with a sentence naming both, nothing of it is written, and a rerun refuses it again (it is
  never taken as done); the other archive goes through."""
  from koala import images
  from serving import pages
  page = images.encode_png(corpus.colour_scene(0, 64, 48))
  (tmp_path / "in").mkdir()
  (tmp_path / "in" / "clash.cbz").write_bytes(cbz({"001.png": page, "001.jpg": page}))
  (tmp_path / "in" / "fine.cbz").write_bytes(cbz({"001.png": page, "002.jpg": page}))
  for _ in range(2):
    jobs, problems = pages.find_jobs([str(tmp_path / "in")], str(tmp_path / "out"))
    report = pages.run(jobs, reencode, progress=False)
    clash = str(tmp_path / "in" / "clash.cbz")
    assert list(report.failed) == [clash]
    assert "001.png and 001.jpg (both 001.png)" in report.failed[clash]
    assert sorted(os.listdir(tmp_path / "out")) == ["fine.cbz"]
  with zipfile.ZipFile(tmp_path / "out" / "fine.cbz") as z:
    assert sorted(z.namelist()) == ["001.png", "002.png"]


def test_outputs_are_written_through_tempfile_not_a_predictable_name(tmp_path):
  """A link planted where the old writer put its temporary file (<output>.part-PID-TID) is not
  written through; the output appears whole with the mode a new file gets, and a write that
  fails leaves nothing behind."""
  import threading
  from koala import images
  from serving import pages as serving_pages
  victim = tmp_path / "victim.txt"
  victim.write_text("keep me")
  out = tmp_path / "out"
  out.mkdir()
  for planted in (f"p.png.part-{os.getpid()}-{threading.get_ident()}",
                  f"book.cbz.part-{os.getpid()}"):
    (out / planted).symlink_to(victim)
  serving_pages.write_atomic(str(out / "p.png"), b"coloured")
  (tmp_path / "book.cbz").write_bytes(cbz({"001.png": images.encode_png(
      corpus.colour_scene(0, 64, 48))}))
  jobs, _ = serving_pages.find_jobs([str(tmp_path / "book.cbz")], str(out))
  assert serving_pages.run(jobs, reencode, progress=False).done == [str(out / "book.cbz")]
  assert victim.read_text() == "keep me" and (out / "p.png").read_bytes() == b"coloured"
  umask = os.umask(0o022)
  os.umask(umask)
  assert (out / "p.png").stat().st_mode & 0o777 == 0o666 & ~umask
  with pytest.raises(RuntimeError):
    with serving_pages.atomic_file(str(out / "half.png")) as f:
      f.write(b"half")
      raise RuntimeError("interrupted")
  assert sorted(p.name for p in out.iterdir() if not p.is_symlink()) == ["book.cbz", "p.png"]


def test_serving_pages_reads_an_archive_once_not_once_a_page(tmp_path, monkeypatch):
  """Reading page after page by name re-opens the zip and re-reads its central directory each
  time: 2,000 pages cost 18.5 s of CPU before the model ran (issue 19). serving.pages reads an
  archive front to back once; the opens it makes do not grow with the pages."""
  from koala import images
  from serving import pages
  opened = []

  class CountingZipFile(zipfile.ZipFile):
    def __init__(self, file, mode="r", *args, **kwargs):
      if mode == "r":
        opened.append(str(file))
      super().__init__(file, mode, *args, **kwargs)

  monkeypatch.setattr(zipfile, "ZipFile", CountingZipFile)
  page = images.encode_png(corpus.colour_scene(0, 32, 32))
  counts = {}
  for n in (2, 2000):
    source = tmp_path / f"in{n}" / "book.cbz"
    source.parent.mkdir()
    source.write_bytes(cbz({f"{i:04d}.png": page for i in range(n)}))
    jobs, _ = pages.find_jobs([str(source.parent)], str(tmp_path / f"out{n}"))
    del opened[:]
    report = pages.run(jobs, lambda data: images.encode_png(images.decode_image(data)),
                       progress=False)
    assert not report.failed and report.done == [str(tmp_path / f"out{n}" / "book.cbz")]
    with zipfile.ZipFile(report.done[0]) as z:
      assert len(z.namelist()) == n
    counts[n] = opened.count(str(source))
  assert counts[2000] == counts[2] <= 4, counts
