"""serving.beam_colorize with --hints_dir and --reference, on a guided export: real Beam runs (the
offline FnApiRunner) with RunInference over the export's colorize_guided signature, against
serving.client --hints --reference on `python -m serving.server` with the same export.

The export is the guided colorizer, untrained, with the tiny embedder
(tests/serving_support.py, "guided"): what is under test is how hints and the reference reach
the signature (matching, bad files, identity with the client), which holds for any weights.
"""
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from koala import schema
from serving import beam_colorize as colorize, client
from tests import serving_support as support
from tests import storage
from tests.test_cloud import BUCKET, emulator  # noqa: F401 (a fixture)
from tests.test_colorize import manifest_counts, pixels, run_job
from tests.test_guidance_serving import rgba_png

pytestmark = pytest.mark.slow   # real Beam runs of the batch job

DOT = (40, 30, 8)   # top, left, side of the hint dot on a 120 x 90 page


@pytest.fixture(scope="module")
def export(guided_export):
  return guided_export


@pytest.fixture(scope="module")
def library(tmp_path_factory):
  """Pages (p1 and p3 the same gray page), a .cbz of two pages, a hints folder (p1's and the
  archive's 001's dots, p2's hint file not an image, p4's cut short) and a colour cover."""
  root = tmp_path_factory.mktemp("guided")
  pages, hints = root / "library", root / "hints"
  (pages / "ch").mkdir(parents=True)
  hints.mkdir()
  page = support.png_bytes(support.task_page(120, 90, seed=0)[0])
  (pages / "p1.png").write_bytes(page)
  (pages / "ch" / "p2.png").write_bytes(support.png_bytes(support.task_page(80, 60, seed=1)[0]))
  (pages / "p3.png").write_bytes(page)
  (pages / "p4.png").write_bytes(support.png_bytes(support.task_page(70, 50, seed=2)[0]))
  with zipfile.ZipFile(pages / "book.cbz", "w") as z:
    z.writestr("001.png", support.png_bytes(support.task_page(60, 40, seed=3)[0]))
    z.writestr("002.png", support.png_bytes(support.task_page(64, 48, seed=4)[0]))
  dot = rgba_png(120, 90, [DOT])
  (hints / "p1.png").write_bytes(dot)
  (hints / "p2.png").write_bytes(b"not a png at all")
  (hints / "p4.png").write_bytes(dot[:len(dot) // 2])    # its header reads; the model refuses it
  (hints / "001.png").write_bytes(rgba_png(30, 20, [(5, 5, 4)]))
  cover = np.zeros((40, 60, 3), np.uint8)
  cover[:, :30], cover[:, 30:] = (30, 60, 210), (230, 200, 40)
  (root / "cover.png").write_bytes(support.png_bytes(cover))
  return root


@pytest.fixture(scope="module")
def guided_run(export, library, tmp_path_factory):
  out = tmp_path_factory.mktemp("guided_out")
  counters = run_job(export, library / "library", out, f"--hints_dir={library / 'hints'}",
                     f"--reference={library / 'cover.png'}")
  return out, counters


def test_a_bad_hint_file_rejects_only_its_page_and_the_counts_add_up(guided_run, library):
  out, counters = guided_run
  rejected = {json.loads(l)["path"]: json.loads(l)["reason"]
              for l in (out / schema.REJECTED).read_text().splitlines()}
  lib, hints = library / "library", library / "hints"
  assert sorted(rejected) == [str(lib / "ch" / "p2.png"), str(lib / "p4.png")]
  assert rejected[str(lib / "ch" / "p2.png")].startswith(f"hints file {hints / 'p2.png'}: ")
  assert rejected[str(lib / "p4.png")].startswith(f"hints file {hints / 'p4.png'}: ")
  assert "hints_bytes" in rejected[str(lib / "p4.png")]          # the model's own reason
  assert sorted(p.name for p in out.glob("*.png")) == ["p1.png", "p3.png"]
  assert not (out / "ch").exists()
  with zipfile.ZipFile(out / "book.cbz") as z:
    assert z.namelist() == ["001.png", "002.png"]
  counts = manifest_counts(out)
  assert counts == {"inputs": 6, "coloured": 4, "kept_colour": 0, "skipped_done": 0,
                    "rejected": 2}
  assert {k: counters.get(k, 0) for k in counts} == counts
  assert counters["pages_with_hints"] == 3                          # p1, p4 and the .cbz's 001
  options = json.loads((out / schema.MANIFEST).read_text())["options"]
  assert options["hints_dir"] == str(hints) and options["reference"].endswith("cover.png")


def test_guided_pages_are_pixel_for_pixel_what_the_client_gets(guided_server, library,
                                                               guided_run, tmp_path):
  code = client.main([str(library / "library"), f"--server={guided_server.url}", "--model=koala",
                      f"--output_dir={tmp_path}", f"--hints={library / 'hints'}",
                      f"--reference={library / 'cover.png'}", "--no_progress"])
  assert code == 1                                                   # p2 and p4, as above
  out = guided_run[0]
  assert sorted(p.name for p in tmp_path.glob("*.png")) == ["p1.png", "p3.png"]
  for rel in ("p1.png", "p3.png"):
    np.testing.assert_array_equal(pixels((out / rel).read_bytes()),
                                  pixels((tmp_path / rel).read_bytes()))
  with zipfile.ZipFile(out / "book.cbz") as ours, zipfile.ZipFile(tmp_path / "book.cbz") as theirs:
    for name in ("001.png", "002.png"):
      np.testing.assert_array_equal(pixels(ours.read(name)), pixels(theirs.read(name)))


def test_a_page_gets_its_own_hint_file_and_no_other(export, library, tmp_path):
  """p1 coloured with its hint file only is the export's colorize_guided of p1 and that file,
  called in process, pixel for pixel; without a hints folder it is serving_default's. That is
  what holds for any weights (where a dot changes colours is the weights' business under the
  gray composition; the manga composition's region fill is tested in test_regions.py and
  test_manga_serving.py). The untrained export's answer does change with this dot, so a job
  that dropped or mismatched the hint file would fail here."""
  page = library / "library" / "p1.png"
  hint = (library / "hints" / "p1.png").read_bytes()
  run_job(export, page, tmp_path / "auto")
  run_job(export, page, tmp_path / "hinted", f"--hints_dir={library / 'hints'}")
  guided = support.colorize_in_process(export, page.read_bytes(), hints=hint)
  automatic = support.colorize_in_process(export, page.read_bytes())
  assert pixels(guided).tolist() != pixels(automatic).tolist()     # these weights see the dot
  np.testing.assert_array_equal(pixels((tmp_path / "hinted" / "p1.png").read_bytes()),
                                pixels(guided))
  np.testing.assert_array_equal(pixels((tmp_path / "auto" / "p1.png").read_bytes()),
                                pixels(automatic))


def test_an_export_without_colorize_guided_is_refused_before_launch(untrained_export, library,
                                                                   tmp_path):
  r = subprocess.run([sys.executable, "-m", "serving.beam_colorize",
                      f"--model={untrained_export}", f"--input={library / 'library'}",
                      f"--output_dir={tmp_path / 'out'}", f"--reference={library / 'cover.png'}"],
                     cwd=support.ROOT, capture_output=True, text=True, timeout=300)
  assert r.returncode == 2, r.stderr
  assert "no colorize_guided signature" in r.stderr.strip().splitlines()[-1], r.stderr
  assert not (tmp_path / "out").exists()


def test_hints_and_the_reference_are_read_from_gs(emulator, library):  # noqa: F811
  """The job's guidance goes through Beam's file system: the Cloud Storage emulator here."""
  FileSystems.set_options(PipelineOptions(["--no_auth"]))
  storage.upload_dir(str(library / "hints"), f"gs://{BUCKET}/guided/hints", emulator)
  storage.upload_dir(str(library / "hints"), f"gs://{BUCKET}/guided/hints/old", emulator)
  emulator.bucket(BUCKET).blob("guided/cover.png").upload_from_filename(library / "cover.png")
  guidance = colorize.load_guidance(f"gs://{BUCKET}/guided/hints/",
                                    f"gs://{BUCKET}/guided/cover.png")
  assert guidance.hints == {s: f"gs://{BUCKET}/guided/hints/{s}.png"     # not old/: one level
                            for s in ("001", "p1", "p2", "p4")}
  assert guidance.reference == (library / "cover.png").read_bytes()
  assert guidance.for_page("x/001.png")["hints"] == (   # an archive entry, by its stem
      library / "hints" / "001.png").read_bytes()
  with pytest.raises(ValueError, match=f"hints file gs://{BUCKET}/guided/hints/p2.png: "):
    guidance.for_page("ch/p2.jpg")
  with pytest.raises(ValueError, match="no such folder"):
    colorize.load_guidance(f"gs://{BUCKET}/nowhere", None)
  with pytest.raises(ValueError, match=f"reference gs://{BUCKET}/guided/nothing.png: "):
    colorize.load_guidance(None, f"gs://{BUCKET}/guided/nothing.png")
