"""Export -> serve -> client, end to end, with a model trained on the learnable synthetic task
and the real Inception-ResNet-v2 embedder (random weights) inside the SavedModel; plus the
original project's in-process API and the export's refusals.

The checks are the ones a user cares about: the coloured page has the input's size, its L is
the input's gray within 2 LAB units (line art and lettering intact), and the shapes whose gray
level the task ties to a colour come out in that colour.
"""
import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from koala import colour
from serving import client, exports, inference
from tests import serving_support as support
from tests import trainer_records
from trainer import artifacts
from trainer.model import AB_OUTPUT, EMBEDDING_INPUT, L_INPUT
from trainer.export import __main__ as export_cli, build as export, info as export_info

PAGE_SHAPE = (420, 300)    # portrait: the letterbox pads left and right


@pytest.fixture(scope="module")
def base(inception_export):
  return inception_export


@pytest.fixture(scope="module")
def server(inception_server):
  return inception_server


@pytest.fixture(scope="module")
def pages_dir(tmp_path_factory):
  """A folder tree with gray pages, a colour page, a .cbz and a bad file."""
  root = tmp_path_factory.mktemp("pages")
  (root / "vol1" / "ch1").mkdir(parents=True)
  gray, _ = support.task_page(*PAGE_SHAPE, seed=0)
  (root / "p1.png").write_bytes(support.png_bytes(gray))
  Image.fromarray(support.task_page(300, 200, seed=1)[0]).save(root / "vol1" / "ch1" / "p2.jpg",
                                                               quality=95)
  rgb = np.zeros((120, 90, 3), np.uint8)
  rgb[..., 0], rgb[..., 2] = 200, 40
  (root / "vol1" / "colour.png").write_bytes(support.png_bytes(rgb))
  (root / "vol1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
  with zipfile.ZipFile(root / "book.cbz", "w") as z:
    z.writestr("ComicInfo.xml", "<ComicInfo><Title>t</Title></ComicInfo>")
    z.writestr("001.png", support.png_bytes(support.task_page(200, 140, seed=2)[0]))
    z.writestr("002.png", support.png_bytes(support.task_page(210, 150, seed=3)[0]))
  return root


@pytest.fixture(scope="module")
def client_run(server, pages_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("out")
  code = client.main([str(pages_dir), f"--server={server.url}", "--model=koala",
                      f"--output_dir={out}", "--concurrency=2", "--skip_colour_pages",
                      "--no_progress"])
  return code, out


def lab_of(path_or_bytes):
  data = path_or_bytes if isinstance(path_or_bytes, bytes) else open(path_or_bytes, "rb").read()
  return colour.rgb_to_lab(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_the_page_keeps_its_size_and_its_lightness(client_run):
  code, out = client_run
  gray, _ = support.task_page(*PAGE_SHAPE, seed=0)
  lab = lab_of(str(out / "p1.png"))
  assert lab.shape[:2] == PAGE_SHAPE
  assert np.abs(lab[..., 0] - colour.gray_to_l(gray)).max() <= 2.0


def network_ab(base, gray):
  """The page's ab by the NumPy path that made the training records (koala.images letterbox,
  koala.colour L), through the exported networks, cut out and upsampled with OpenCV."""
  import cv2
  from koala import images
  loaded = exports.load_model(base)
  size = 56
  l = colour.gray_to_l(images.letterbox(gray, size))[None, :, :, None]
  unit = images.letterbox(gray, 299).astype(np.float32)[None, :, :, None] / 255.0
  emb = loaded.embed_fn(np.repeat(unit, 3, axis=-1))
  ab = loaded.colorize_fn(l, emb)[AB_OUTPUT].numpy()[0]
  inside = images.unletterbox(ab, *gray.shape)
  return cv2.resize(inside, gray.shape[::-1], interpolation=cv2.INTER_LINEAR)


def reference_page_ab(base, gray):
  """The page's ab as the NumPy reference path colours it: the networks' ab put on the page by
  koala.colour.page_rgb (ab brought into the gamut at the page's own L), the one definition the
  served graph's LAB -> sRGB table is built from. The networks' ab alone is no reference: where
  trained weights predict colours outside the gamut, no page can show them."""
  return colour.rgb_to_lab(colour.page_rgb(gray, network_ab(base, gray)))[..., 1:]


def assert_shapes_have_the_reference_colours(served, reference, label, min_chroma=8.0):
  """Every large shape of the task: its mean served ab is the reference's, within rounding."""
  checked = 0
  for k in range(len(trainer_records.PALETTE) - 1):
    inside = label == k
    if inside.sum() < 500:
      continue
    got, want = served[inside].mean(0), reference[inside].mean(0)
    assert np.linalg.norm(got) > min_chroma, (k, got)
    assert np.abs(got - want).max() < 1.0, (k, got, want)
    checked += 1
  assert checked >= 2


def test_colour_appears_where_the_task_has_colour(client_run, base):
  """Every shape of the task comes out coloured, in the colour the trained networks predict for
  it (the served path wires decode, letterbox, networks, upsampling and the gamut as the NumPy
  reference path does)."""
  _, out = client_run
  gray, label = support.task_page(*PAGE_SHAPE, seed=0)
  served = lab_of(str(out / "p1.png"))[..., 1:]
  assert_shapes_have_the_reference_colours(served, reference_page_ab(base, gray), label)
  assert np.percentile(colour.chroma(served), 75) > 8


def test_out_of_gamut_predictions_are_served_in_the_reference_colours(saturated_export):
  """Weights whose predictions lie far outside the gamut (the last layer tripled): the served
  page still has the reference path's colours, so the check above holds for any weights."""
  base = saturated_export
  gray, label = support.task_page(*PAGE_SHAPE, seed=0)
  served = lab_of(inference.load(base)(support.png_bytes(gray)))[..., 1:]
  raw = network_ab(base, gray)
  page = colour.rgb_to_lab(colour.page_rgb(gray, raw))[..., 1:]
  out_of_gamut = np.abs(page - raw).max(-1) > 5.0
  assert out_of_gamut.mean() > 0.3                # the case this test is about
  assert_shapes_have_the_reference_colours(served, page, label)


def lettered_page():
  """The task's page with 1-pixel lettering and line art of 1 and 3 pixels drawn over it."""
  from PIL import ImageDraw
  gray, _ = support.task_page(*PAGE_SHAPE, seed=4)
  img = Image.fromarray(gray)
  draw = ImageDraw.Draw(img)
  for i in range(12):
    draw.text((8, 10 + 34 * i), "KOALA colours manga 0123", fill=0)
    draw.line([(0, 5 + 35 * i), (PAGE_SHAPE[1], 25 + 30 * i)], fill=0, width=1 + 2 * (i % 2))
  draw.rectangle([150, 200, 280, 260], fill=255)
  draw.text((155, 220), "white balloon", fill=0)
  return np.asarray(img)


def test_lettering_and_line_art_stay_as_crisp_as_the_input(saturated_export):
  """Under colours far outside the gamut (the saturated weights), the served page's lightness is
  the input's to a uint8 rounding at every pixel: no blur, no ringing, no grayed black or tinted
  white, whatever zlib level the export uses (PNG is lossless)."""
  gray = lettered_page()
  rgb = np.asarray(Image.open(io.BytesIO(
      inference.load(saturated_export)(support.png_bytes(gray)))).convert("RGB"))
  error = np.abs(colour.reference_rgb_to_lab(rgb)[..., 0] - colour.gray_to_l(gray))
  assert error.max() < 0.6, error.max()
  assert (rgb[gray == 0] <= 1).all() and (rgb[gray == 255] >= 254).all()


def test_folders_keep_their_structure_and_bad_files_are_reported(client_run, pages_dir):
  code, out = client_run
  assert code == 1                                         # one bad file
  assert (out / "vol1" / "ch1" / "p2.png").exists()
  assert Image.open(out / "vol1" / "ch1" / "p2.png").size == (200, 300)
  assert not (out / "vol1" / "broken.png").exists()
  # The colour page is kept unchanged, not recoloured.
  assert (out / "vol1" / "colour.png").read_bytes() == (pages_dir / "vol1" / "colour.png").read_bytes()


def test_cbz_in_coloured_cbz_out(client_run):
  _, out = client_run
  with zipfile.ZipFile(out / "book.cbz") as z:
    assert sorted(z.namelist()) == ["001.png", "002.png", "ComicInfo.xml"]
    page = lab_of(z.read("002.png"))
    assert page.shape[:2] == (210, 150)
    assert np.percentile(colour.chroma(page[..., 1:]), 90) > 10
    assert b"<Title>t</Title>" in z.read("ComicInfo.xml")


def test_a_rerun_skips_what_exists(server, pages_dir, client_run, capsys):
  _, out = client_run
  before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
  code = client.main([str(pages_dir), f"--server={server.url}", f"--output_dir={out}",
                      "--no_progress", "--skip_colour_pages"])
  assert code == 1                                          # the bad file fails again
  assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
  assert "4 already there" in capsys.readouterr().err


def test_unreachable_server_is_a_clear_error(pages_dir, tmp_path, capsys):
  code = client.main([str(pages_dir / "p1.png"), f"--server=http://127.0.0.1:{support.free_port()}",
                      f"--output_dir={tmp_path}", "--no_progress"])
  assert code == 2
  assert "cannot reach a model server" in capsys.readouterr().err


def test_unknown_model_is_a_clear_error(server, pages_dir, tmp_path, capsys):
  code = client.main([str(pages_dir / "p1.png"), f"--server={server.url}", "--model=nope",
                      f"--output_dir={tmp_path}", "--no_progress"])
  assert code == 2 and "has no model 'nope'" in capsys.readouterr().err


def test_in_process_api_gives_the_served_bytes(base, client_run, pages_dir, tmp_path):
  _, out = client_run
  path = inference.process_single_image(base, str(pages_dir / "p1.png"), str(tmp_path / "one.png"))
  assert open(path, "rb").read() == (out / "p1.png").read_bytes()
  report = inference.batch_colorize(base, str(pages_dir / "vol1"), str(tmp_path / "batch"),
                                    progress=False)
  assert (tmp_path / "batch" / "ch1" / "p2.png").exists()
  assert list(report.failed) == [str(pages_dir / "vol1" / "broken.png")]


def test_colorize_tensors_is_the_trained_colorizer(base, gray_job):
  import tensorflow as tf
  model, _ = artifacts.load_trained(gray_job)
  rng = np.random.default_rng(0)
  l = rng.uniform(0, 100, (2, 56, 56, 1)).astype(np.float32)
  emb = rng.uniform(0, 1, (2, 1536)).astype(np.float32)
  served = exports.load_model(base).signatures["colorize_tensors"](
      l=tf.constant(l), embedding=tf.constant(emb))[AB_OUTPUT].numpy()
  direct = np.clip(model({L_INPUT: l, EMBEDDING_INPUT: emb}).numpy() * 128.0, -127, 127)
  np.testing.assert_allclose(served, direct, atol=1e-3)


def test_export_layout_and_refusals(base, gray_job, tiny_embedder, tmp_path):
  assert sorted(os.listdir(base)) == ["1"]
  assert {"saved_model.pb", "variables", "assets.extra"} <= set(os.listdir(f"{base}/1"))
  info = json.load(open(f"{base}/1/{export_info.PATH}"))
  assert info["colorizer_size"] == 56 and info["embedder"]["weights"] == "random"
  assert export.next_version(base) == 2
  with pytest.raises(export.ExportError, match="exists already"):
    export.export(gray_job, base, 1)
  # An embedder that is not the one that made the records is refused.
  job = tmp_path / "job"
  shutil.copytree(artifacts.model_dir(gray_job), job / "model")
  (job / "model" / "embedder.json").write_text(json.dumps({
      "name": f"hub:{tiny_embedder}", "weights": "", "random_weights": True,
      "identity": "hub:elsewhere:0123456789abcdef"}))
  with pytest.raises(export.ExportError, match="not the one that made the training records"):
    export.export(str(job), str(tmp_path / "models"))
  assert export_cli.main([f"--job_dir={tmp_path / 'nothing'}", f"--export_dir={tmp_path / 'm'}"]) == 2
