"""serving.cbz, the one writer of coloured .cbz archives, and its rule, as the thread-pool walker
(serving.pages: the client, batch_colorize, the Streamlit page) and the Beam batch job's steps
(serving.beam_pages, called here as DoFns on real files) follow it: a refused page is left out
and reported, the other pages are written; an archive of which no page was coloured is not.

The 'colouring' is a real PNG re-encode (the archive handling is under test, not the model): a
page cut short fails to decode, as the model refuses it.
"""
import io
import os
import zipfile

from apache_beam import pvalue

from koala import images
from serving import beam_pages, cbz, pages
from tests import corpus


def reencode(data: bytes) -> bytes:
  return images.encode_png(images.decode_image(data))


def page(seed: int) -> bytes:
  return images.encode_png(corpus.colour_scene(seed, 64, 48))


def write_cbz(path, entries: dict) -> str:
  with zipfile.ZipFile(path, "w") as z:
    for name, data in entries.items():
      z.writestr(name, data)
  return str(path)


def walk(source: str, out_dir) -> pages.Report:
  jobs, problems = pages.find_jobs([source], str(out_dir))
  assert not problems
  return pages.run(jobs, reencode, progress=False)


def test_a_refused_page_is_left_out_and_the_other_pages_are_written(tmp_path):
  cut = page(1)[:200]
  source = write_cbz(tmp_path / "book.cbz", {"ComicInfo.xml": b"<ComicInfo/>",
                                             "001.jpg": page(0), "002.png": cut,
                                             "003.png": page(2)})
  report = walk(source, tmp_path / "out")
  assert report.done == [str(tmp_path / "out" / "book.cbz")]
  assert list(report.failed) == [f"{source}!002.png"]
  with zipfile.ZipFile(tmp_path / "out" / "book.cbz") as z:
    assert z.namelist() == ["ComicInfo.xml", "001.png", "003.png"]   # the source's order
    assert z.read("ComicInfo.xml") == b"<ComicInfo/>"
    assert z.read("003.png") == reencode(page(2))


def test_an_archive_of_which_no_page_was_coloured_is_not_written(tmp_path):
  source = write_cbz(tmp_path / "cut.cbz", {"ComicInfo.xml": b"<ComicInfo/>",
                                            "001.png": page(0)[:200]})
  report = walk(source, tmp_path / "out")
  assert report.done == [] and not (tmp_path / "out" / "cut.cbz").exists()
  assert report.failed == {f"{source}!001.png": report.failed[f"{source}!001.png"],
                           source: cbz.NOTHING_COLOURED}


def test_an_archive_without_pages_is_refused_by_the_walker_and_the_batch_job(tmp_path):
  source = write_cbz(tmp_path / "notes.cbz", {"ComicInfo.xml": b"<ComicInfo/>",
                                              "readme.txt": b"no pages here"})
  report = walk(source, tmp_path / "out")
  assert report.failed == {source: cbz.NO_PAGES}
  assert not (tmp_path / "out" / "notes.cbz").exists()
  expand = beam_pages.Expand(str(tmp_path), str(tmp_path / "beam"))
  out = list(expand.process(source))
  assert len(out) == 1 and isinstance(out[0], pvalue.TaggedOutput)
  assert out[0].tag == beam_pages.REJECTED
  assert out[0].value == {"path": source, "reason": cbz.NO_PAGES}


def test_the_batch_job_writes_the_same_archive_from_the_same_pages(tmp_path):
  """The batch job's WriteArchive, given the pages the walker coloured (a refused one missing),
  writes an archive of the same entries, in the same order, with the same bytes."""
  source = write_cbz(tmp_path / "book.cbz", {"001.png": page(0), "002.png": page(1)[:200],
                                             "ComicInfo.xml": b"<ComicInfo/>"})
  walk(source, tmp_path / "walker")
  beam_out = str(tmp_path / "beam" / "book.cbz")
  os.makedirs(os.path.dirname(beam_out))
  written = list(beam_pages.WriteArchive().process(
      (beam_out, [(source, "001.png", reencode(page(0)))])))
  assert written == [beam_out]
  with zipfile.ZipFile(tmp_path / "walker" / "book.cbz") as ours, \
      zipfile.ZipFile(beam_out) as theirs:
    assert ours.namelist() == theirs.namelist() == ["001.png", "ComicInfo.xml"]
    for name in ours.namelist():
      assert ours.read(name) == theirs.read(name)


def test_a_non_page_entry_refused_once_inflated_is_reported_and_left_out(tmp_path):
  """An entry that is not a page and whose bytes do not match what the central directory
  declares is refused only once read: the writer leaves it out and says which and why, and
  the walker reports it by its label; the pages go in."""
  source = tmp_path / "book.cbz"
  source.write_bytes(corpus.lying_zip({"001.png": page(0), "ComicInfo.xml": b"<ComicInfo/>" * 50},
                                      "ComicInfo.xml", 2))
  buf = io.BytesIO()
  refused = cbz.write(str(source), buf, {"001.png": reencode(page(0))})
  with zipfile.ZipFile(buf) as z:
    assert z.namelist() == ["001.png"]
  assert [name for name, _ in refused] == ["ComicInfo.xml"]
  report = walk(str(source), tmp_path / "out")
  assert report.done == [str(tmp_path / "out" / "book.cbz")]
  assert list(report.failed) == [f"{source}!ComicInfo.xml"]
  assert report.failed[f"{source}!ComicInfo.xml"].startswith("ComicInfo.xml: unreadable entry")
