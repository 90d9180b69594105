"""The demo (`make demo` = `python -m demo`) in its small CI configuration: the same code path,
every stage for real (sample data, Beam pipeline, training, evaluation, export, the REST stand-in
on a loopback port, the client, the report), as a subprocess exactly as a user runs it.

What a newcomer relies on is checked: it exits 0, shows each stage, says that the embedder had
random weights, colours manga pages (paper, ink, screentone) through a model trained on manga
renderings, leaves a report whose pictures are the real pages (coloured, full size, ink kept)
and whose dots, on bare paper, colour the paper around them, stops its server, and never empties
a folder it did not make.
"""
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from demo import config as demo_config
from demo import hints as demo_hints
from demo import report
from demo import run as demo_run
from koala import colour

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow   # the whole demo, every stage for real


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
  out = tmp_path_factory.mktemp("demo") / "demo_out"
  proc = subprocess.run([sys.executable, "-m", "demo", "--small", f"--output_dir={out}"],
                        cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
  return out, proc.stdout


def test_every_stage_runs_and_reports_progress(demo):
  out, stdout = demo
  total = demo_run._stage_count(demo_config.SMALL)
  for n in range(1, total + 1):
    assert re.search(rf"^\[{n}/{total}\] .*: done in \d+ s", stdout, re.M), stdout
  assert "FAILED" not in stdout
  assert "server exited with status 0" in stdout
  assert re.search(r"^Demo finished in \d+ min \d\d s\. Where everything is:", stdout, re.M)


def test_it_says_plainly_that_the_embedder_had_random_weights(demo):
  out, stdout = demo
  assert "NOTE: the embedder ran with RANDOM weights" in stdout
  with open(out / "report" / "index.html") as f:
    page = f.read()
  assert "The embedder ran with RANDOM weights" in page


def test_the_summary_names_paths_that_exist(demo):
  out, stdout = demo
  summary = stdout.split("Where everything is:", 1)[1].splitlines()
  for label in ("records", "SavedModel", "coloured pages", "report", "logs"):
    line = next(l for l in summary if l.strip().startswith(label))
    path = line.split()[len(label.split())].rstrip("/")
    assert os.path.exists(path), line
  assert (out / "models" / "koala" / "1" / "saved_model.pb").exists()


def test_the_coloured_pages_are_the_gray_pages_in_colour(demo):
  out, _ = demo
  grays = sorted((out / "sample" / "gray_pages").glob("*.png"))
  assert len(grays) == demo_config.SMALL.pages
  for gray_path in grays:
    gray = np.asarray(Image.open(gray_path).convert("L"))
    rgb = np.asarray(Image.open(out / "colour_pages" / gray_path.name).convert("RGB"))
    assert rgb.shape[:2] == gray.shape                        # full size, not 224 or 56
    assert_ink_kept(gray, rgb)
    assert report.mean_chroma(str(out / "colour_pages" / gray_path.name)) > 2


def test_the_report_shows_the_pages(demo):
  out, _ = demo
  grid = Image.open(out / "report" / "demo_report.png")
  assert grid.width >= 900 and grid.height > report.THUMB_HEIGHT
  with open(out / "report" / "index.html") as f:
    page = f.read()
  assert 'src="demo_report.png"' in page
  for name in ("page_00", "page_01"):
    assert f"../colour_pages/{name}.png" in page and f"../sample/gray_pages/{name}.png" in page
  assert "PSNR" in page                                     # the evaluation's table


def test_a_folder_the_demo_did_not_make_is_refused(tmp_path):
  (tmp_path / "thesis.tex").write_text("years of work")
  with pytest.raises(SystemExit, match="refusing to empty"):
    demo_run.prepare_output(str(tmp_path))
  assert (tmp_path / "thesis.tex").exists()
  own = tmp_path / "demo_out"
  demo_run.prepare_output(str(own))
  (own / "old_result.png").write_bytes(b"x")
  demo_run.prepare_output(str(own))                         # its own folder: emptied
  assert sorted(os.listdir(own)) == [demo_run.MARKER]


def test_the_guided_columns_are_the_pages_steered_by_hints_and_a_reference(demo):
  out, stdout = demo
  assert demo_config.SMALL.hints
  assert "trainer.task" in stdout and "--hints" in stdout
  for gray_path in sorted((out / "sample" / "gray_pages").glob("*.png")):
    name = gray_path.name
    hint = np.asarray(Image.open(out / "hints" / name))
    gray = np.asarray(Image.open(gray_path).convert("L"))
    assert hint.shape[2] == 4 and max(hint.shape[:2]) <= 448         # hint_dots' small PNG
    assert abs(hint.shape[0] / hint.shape[1] - gray.shape[0] / gray.shape[1]) < 0.02
    assert 0 < (hint[..., 3] > 0).mean() < 0.05                        # a few dots
    auto = np.asarray(Image.open(out / "colour_pages" / name).convert("RGB"), np.int32)
    for folder in ("colour_pages_hints", "colour_pages_reference"):
      steered = np.asarray(Image.open(out / folder / name).convert("RGB"), np.int32)
      assert steered.shape == auto.shape
      assert_ink_kept(gray, steered.astype(np.uint8))
  # The client's guided pages are the export's colorize_guided of the same page and hint image,
  # and of the same page and reference, called here in process: pixel for pixel.
  import tensorflow as tf
  from trainer.export import signatures
  guided = tf.saved_model.load(str(out / "models" / "koala" / "1")).signatures[
      signatures.COLORIZE_GUIDED]
  name = "page_00.png"
  reference = demo_run.reference_image(str(out / "sample" / "colour"))
  for folder, hints, ref in (("colour_pages_hints", (out / "hints" / name).read_bytes(), b""),
                             ("colour_pages_reference", b"", open(reference, "rb").read())):
    png = guided(image_bytes=tf.constant([(out / "sample" / "gray_pages" / name).read_bytes()]),
                 hints_bytes=tf.constant([hints]),
                 reference_bytes=tf.constant([ref]))[signatures.PNG_BYTES].numpy()[0]
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")),
                                  np.asarray(Image.open(out / folder / name).convert("RGB")),
                                  err_msg=folder)
  with open(out / "report" / "index.html") as f:
    page = f.read()
  assert "../colour_pages_hints/page_00.png" in page
  assert "../colour_pages_reference/page_00.png" in page
  assert "../sample/page_truth/page_00.png" in page


def assert_ink_kept(gray: np.ndarray, rgb: np.ndarray) -> None:
  """The manga composition (the page multiplies the colour): nothing gets lighter than the
  page, and ink stays ink."""
  y_out = colour.relative_luminance(rgb)
  y_page = colour.relative_luminance(np.repeat(gray[..., None], 3, -1))
  assert (y_out <= y_page + 1e-3).all()
  assert (rgb[gray == 0] == 0).all()


def test_the_pipeline_trains_on_manga_renderings(demo):
  out, stdout = demo
  assert "--render=manga" in stdout
  from koala import records_manifest
  assert records_manifest.read(str(out / "records")).rendering.kind == "manga"


def test_the_pages_are_manga_pages_of_held_out_scenes(demo):
  out, _ = demo
  for gray_path in sorted((out / "sample" / "gray_pages").glob("*.png")):
    gray = np.asarray(Image.open(gray_path).convert("L"))
    paper, ink = (gray >= 250).mean(), (gray <= 40).mean()
    assert 0.35 <= paper <= 0.95 and ink >= 0.01, (gray_path.name, paper, ink)
    truth = np.asarray(Image.open(out / "sample" / "page_truth" / gray_path.name).convert("RGB"))
    assert truth.shape[:2] == gray.shape


def test_the_dots_are_on_paper_and_fill_their_regions(demo):
  """The report's dotted column: each dot sits on bare paper in the colour original's colour
  there (the user who knows the sky is blue at noon and orange at dusk) and fills the paper
  region it sits in (the 4-connected area of paper around it, far larger than the dot) in that
  colour: the served graph's region fill, for any weights."""
  import scipy.ndimage
  out, _ = demo
  for gray_path in sorted((out / "sample" / "gray_pages").glob("*.png")):
    gray = np.asarray(Image.open(gray_path).convert("L"))
    truth = np.asarray(Image.open(out / "sample" / "page_truth" / gray_path.name).convert("RGB"))
    hinted = np.asarray(Image.open(out / "colour_pages_hints" / gray_path.name).convert("RGB"))
    dots = demo_hints.pick_dots(gray, truth, demo_config.SMALL.hint_dots)
    assert dots
    areas, _ = scipy.ndimage.label(gray >= demo_hints.PAPER)
    lab_truth, lab_hinted = colour.rgb_to_lab(truth), colour.rgb_to_lab(hinted)
    for d in dots:
      around = demo_hints.near(gray.shape, d.y, d.x) & (gray >= demo_hints.PAPER)
      assert around.sum() > 600, d                           # bare paper all around
      dot_lab = colour.rgb_to_lab(np.array([[d.rgb]], np.uint8))[0, 0]
      assert np.linalg.norm(np.median(lab_truth[around], axis=0) - dot_lab) < 5, d
      region = areas == areas[d.y, d.x]
      assert region.sum() > 4 * around.sum(), d              # a region, not a neighbourhood
      covered = (np.linalg.norm(lab_hinted[region] - dot_lab, axis=-1) <= 15).mean()
      assert covered >= 0.9, (gray_path.name, d, covered)
