"""Guidance through serving: the colorize_guided signature of a guided export, its TF
preprocessing against koala.guidance's NumPy encodings, the REST round trip on a real
stand-in server, the command-line client with a hints folder and a reference, and the
in-process API. The guided model is tests/serving_support.py's (narrow, untrained: what is
tested here is how hints and references reach the network and what comes back, which holds
for any weights)."""
import base64
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import requests
from PIL import Image

from koala import colour, gray, guidance, images, schema
from tests import serving_support as support

SIZE = support.SMALL["image_size"]


def b64(data: bytes) -> dict:
  return {"b64": base64.b64encode(data).decode()}


def rgba_png(height, width, dots=(), colour_rgb=(220, 30, 30)) -> bytes:
  """A transparent hint image with opaque squares at dots = [(top, left, side), ...]."""
  rgba = np.zeros((height, width, 4), np.uint8)
  for top, left, side in dots:
    rgba[top:top + side, left:left + side] = (*colour_rgb, 255)
  return support.png_bytes(rgba, "RGBA")


def decoded(png: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.int32)


@pytest.fixture(scope="module")
def page():
  return support.png_bytes(support.task_page(150, 100, seed=4)[0])


@pytest.fixture(scope="module")
def reference():
  rng = np.random.default_rng(0)
  rgb = np.zeros((90, 160, 3), np.uint8)
  rgb[:, :80] = (30, 60, 210)
  rgb[:, 80:] = (230, 200, 40)
  rgb[40:50] = rng.integers(0, 256, (10, 160, 3))
  return support.png_bytes(rgb)


# --- the TF preprocessing against koala.guidance (NumPy) ----------------------------------------

def expected_planes(rgba: np.ndarray, page_h: int, page_w: int, size: int) -> np.ndarray:
  """The hint rule written out in NumPy, pixel by pixel: stretch the hint image over the page,
  letterbox the page into size x size; per cell, the mean ab of the hinted pixels."""
  box = images.letterbox_box(page_h, page_w, size)
  sums = np.zeros((size, size, 2))
  counts = np.zeros((size, size))
  lab = colour.rgb_to_lab(rgba[..., :3])
  for y, x in zip(*np.nonzero(rgba[..., 3] > 0)):
    row = box.top + min(int((y + 0.5) * box.height / rgba.shape[0]), box.height - 1)
    col = box.left + min(int((x + 0.5) * box.width / rgba.shape[1]), box.width - 1)
    sums[row, col] += lab[y, x, 1:]
    counts[row, col] += 1
  mask = counts > 0
  return guidance.encode_hints_np(sums / np.maximum(counts, 1)[..., None], mask)


@pytest.mark.parametrize("page_hw, hint_hw", [((150, 100), (150, 100)), ((150, 100), (61, 97)),
                                              ((90, 200), (400, 300))])
def test_hint_planes_match_the_numpy_rule(page_hw, hint_hw):
  import tensorflow as tf
  from trainer.export import guidance as tf_guidance
  rng = np.random.default_rng(sum(hint_hw))
  rgba = np.zeros(hint_hw + (4,), np.uint8)
  for _ in range(12):   # dots of random colours, some overlapping, some on the edges
    y, x = rng.integers(0, hint_hw[0]), rng.integers(0, hint_hw[1])
    rgba[y:y + 5, x:x + 5] = (*rng.integers(0, 256, 3), rng.integers(1, 256))
  got = tf_guidance.hint_planes(
      tf_guidance.hint_image(tf.constant(support.png_bytes(rgba, "RGBA")), 10 ** 8),
      tf.constant(page_hw), SIZE).numpy()
  want = expected_planes(rgba, *page_hw, SIZE)
  assert got.shape == (SIZE, SIZE, 3) and got.dtype == np.float32
  np.testing.assert_array_equal(got[..., 2], want[..., 2])       # the same cells are hinted
  np.testing.assert_allclose(got, want, atol=1.0 / 128)          # within 1 LAB unit
  # the page's letterbox padding never gets a hint
  box = images.letterbox_box(*page_hw, SIZE)
  inside = np.zeros((SIZE, SIZE), bool)
  inside[box.top:box.top + box.height, box.left:box.left + box.width] = True
  assert got[..., 2][~inside].sum() == 0 and got[..., 2].sum() > 0


def test_a_transparent_hint_image_gives_exactly_no_hints():
  import tensorflow as tf
  from trainer.export import guidance as tf_guidance
  for data in (rgba_png(80, 60), b""):
    planes = tf_guidance.hint_planes(tf_guidance.hint_image(tf.constant(data), 10 ** 8),
                                     tf.constant([80, 60]), SIZE).numpy()
    assert not np.signbit(planes).any() and not planes.any()


def encoded(rgb_or_rgba: np.ndarray, fmt: str, mode=None) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(rgb_or_rgba, mode).save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
  return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "RGBA PNG", "gray PNG", "WEBP"])
def test_reference_palette_matches_the_trainers_palette_of_the_same_image(reference, fmt):
  import tensorflow as tf
  from trainer.export import guidance as tf_guidance
  rgb = np.asarray(Image.open(io.BytesIO(reference)).convert("RGB"))
  data = {"PNG": reference, "JPEG": encoded(rgb, "JPEG"), "WEBP": encoded(rgb, "WEBP"),
          "RGBA PNG": encoded(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), "PNG"),
          "gray PNG": encoded(rgb[..., 1], "PNG")}[fmt]
  got = tf_guidance.reference_palette(tf.constant(data), 10 ** 8).numpy()
  lab = gray.lab_at(images.decode_image(data), schema.IMAGE_SIZE)
  want = guidance.palette_np(lab[..., 0], lab[..., 1:])
  assert got.shape == (guidance.PALETTE_SIZE,)
  np.testing.assert_allclose(got, want, atol=0.02)   # LAB conversions agree within ~1 unit


def test_hint_images_without_alpha_hint_every_pixel():
  import tensorflow as tf
  from trainer.export import guidance as tf_guidance
  rgb = np.full((100, 100, 3), (200, 40, 40), np.uint8)
  for data in (encoded(rgb, "JPEG"), encoded(rgb, "PNG"), encoded(rgb[..., 0], "PNG")):
    planes = tf_guidance.hint_planes(tf_guidance.hint_image(tf.constant(data), 10 ** 8),
                                     tf.constant([100, 100]), SIZE).numpy()
    assert planes[..., 2].all()


# --- REST round trip -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(guided_server):
  return guided_server


def guided(server, image, hints=b"", reference=b"", fmt="row"):
  if fmt == "row":
    body = {"signature_name": "colorize_guided", "instances": [{
        "image_bytes": b64(image), "hints_bytes": b64(hints), "reference_bytes": b64(reference)}]}
  else:
    body = {"signature_name": "colorize_guided", "inputs": {
        "image_bytes": [b64(image)], "hints_bytes": [b64(hints)],
        "reference_bytes": [b64(reference)]}}
  return requests.post(server.url + "/v1/models/koala:predict", data=json.dumps(body), timeout=120)


def png_of(r) -> bytes:
  assert r.status_code == 200, r.text
  doc = r.json()
  item = doc["predictions"][0] if "predictions" in doc else doc["outputs"][0]
  return base64.b64decode(item["b64"])


def automatic(server, image) -> bytes:
  r = requests.post(server.url + "/v1/models/koala:predict",
                    data=json.dumps({"instances": [b64(image)]}), timeout=120)
  return png_of(r)


def test_metadata_lists_colorize_guided(server):
  sigs = requests.get(server.url + "/v1/models/koala/metadata").json()[
      "metadata"]["signature_def"]["signature_def"]
  assert set(sigs) >= {"serving_default", "colorize_tensors", "colorize_guided"}
  assert set(sigs["colorize_guided"]["inputs"]) == {"image_bytes", "hints_bytes",
                                                    "reference_bytes"}
  assert set(sigs["serving_default"]["inputs"]) == {"image_bytes"}   # unchanged


def test_no_guidance_and_transparent_hints_are_byte_equal_to_serving_default(server, page):
  auto = automatic(server, page)
  assert png_of(guided(server, page)) == auto
  assert png_of(guided(server, page, hints=rgba_png(300, 200))) == auto
  assert png_of(guided(server, page, fmt="columnar")) == auto


def test_a_hinted_page_is_the_export_s_own_answer_to_that_hint(server, guided_export, page):
  """The served page for a hint image is colorize_guided's for the same page and hint image,
  called in process, byte for byte: what holds for any weights. Where a dot changes the colours
  is the weights' business under the gray composition (the hint planes it feeds the network are
  checked against koala.guidance above; the manga composition's region fill, which holds for
  any weights, in test_regions.py and test_manga_serving.py). The untrained export's answer
  does change with this dot, so a server that dropped the hint would fail here."""
  # a hint image twice the page's size: the dot at (100..110, 150..160) lands at (50..55, 75..80)
  hint = rgba_png(300, 200, [(100, 150, 10)])
  out = png_of(guided(server, page, hints=hint))
  assert decoded(out).shape == (150, 100, 3)
  assert out == support.colorize_in_process(guided_export, page, hints=hint)
  assert out != automatic(server, page)


def test_a_referenced_page_is_the_export_s_own_answer_to_that_reference(server, guided_export,
                                                                        page, reference):
  out = png_of(guided(server, page, reference=reference))
  assert decoded(out).shape == (150, 100, 3)
  assert out == support.colorize_in_process(guided_export, page, reference=reference)
  assert out != automatic(server, page)


def test_a_batch_mixes_guided_and_unguided_pages(server, page, reference):
  other = support.png_bytes(support.task_page(64, 90, seed=2)[0])
  body = {"signature_name": "colorize_guided", "instances": [
      {"image_bytes": b64(page), "hints_bytes": b64(rgba_png(20, 20, [(5, 5, 3)])),
       "reference_bytes": b64(reference)},
      {"image_bytes": b64(other), "hints_bytes": b64(b""), "reference_bytes": b64(b"")}]}
  r = requests.post(server.url + "/v1/models/koala:predict", data=json.dumps(body), timeout=120)
  assert r.status_code == 200, r.text
  first, second = [base64.b64decode(p["b64"]) for p in r.json()["predictions"]]
  assert decoded(first).shape == (150, 100, 3)
  assert second == automatic(server, other)


def huge_png_header() -> bytes:
  from tests.test_serving_rest import huge_png_header as header
  return header()


@pytest.mark.parametrize("case, names", [
    ("hints not an image", "hints_bytes: Not a supported image"),
    ("reference not an image", "reference_bytes: Not a supported image"),
    ("hints truncated", "hints_bytes: Truncated PNG"),
    ("hints too large", "hints_bytes: Image too large"),
    ("reference too large", "reference_bytes: Image too large"),
])
def test_bad_guidance_is_400_naming_the_input(server, page, case, names):
  hints = rgba_png(40, 40, [(5, 5, 4)])
  kwargs = {
      "hints not an image": {"hints": b"these are not hints"},
      "reference not an image": {"reference": b"%PDF-1.4 not an image"},
      "hints truncated": {"hints": hints[:len(hints) // 2]},
      "hints too large": {"hints": huge_png_header()},
      "reference too large": {"reference": huge_png_header()},
  }[case]
  r = guided(server, page, **kwargs)
  assert r.status_code == 400, (case, r.status_code, r.text[:300])
  assert names in r.json()["error"], r.json()["error"][:300]
  assert guided(server, page).status_code == 200           # the server stays up


def test_an_instance_without_the_guidance_keys_is_400(server, page):
  body = {"signature_name": "colorize_guided", "instances": [{"image_bytes": b64(page)}]}
  r = requests.post(server.url + "/v1/models/koala:predict", data=json.dumps(body), timeout=60)
  assert r.status_code == 400 and "hints_bytes" in r.json()["error"]


# --- the client: a hints folder and a reference --------------------------------------------------

def client(server, *args):
  return subprocess.run([sys.executable, "-m", "serving.client", f"--server={server.url}",
                         "--model=koala", "--no_progress", *args],
                        cwd=support.ROOT, capture_output=True, text=True, timeout=300)


def test_client_with_a_hints_folder_and_a_reference(server, page, reference, tmp_path):
  pages_dir, hints_dir, out = tmp_path / "pages", tmp_path / "hints", tmp_path / "out"
  pages_dir.mkdir()
  hints_dir.mkdir()
  (pages_dir / "p1.png").write_bytes(page)
  (pages_dir / "p2.png").write_bytes(page)
  (pages_dir / "p3.png").write_bytes(page)
  dot = rgba_png(150, 100, [(50, 75, 6)])
  (hints_dir / "p1.png").write_bytes(dot)
  (hints_dir / "p2.png").write_bytes(b"not a png at all")        # a bad hint file: p2 fails
  (tmp_path / "cover.png").write_bytes(reference)
  r = client(server, str(pages_dir), f"--output_dir={out}", f"--hints={hints_dir}",
             f"--reference={tmp_path / 'cover.png'}")
  assert r.returncode == 1, r.stderr
  assert "guidance: 2 hint files, one reference for every page" in r.stderr
  assert "failed: " in r.stderr and "p2.png" in r.stderr and "hints file" in r.stderr
  assert sorted(os.listdir(out)) == ["p1.png", "p3.png"]
  # p1 had its dot and the reference, p3 the reference alone: as the server answers them
  assert (out / "p1.png").read_bytes() == png_of(guided(server, page, dot, reference))
  assert (out / "p3.png").read_bytes() == png_of(guided(server, page, b"", reference))


def test_client_refuses_a_bad_reference_before_the_first_page(server, page, tmp_path):
  (tmp_path / "p.png").write_bytes(page)
  (tmp_path / "cover.png").write_bytes(b"no image here")
  r = client(server, str(tmp_path / "p.png"), f"--output_dir={tmp_path / 'out'}",
             f"--reference={tmp_path / 'cover.png'}")
  assert r.returncode == 2 and "reference: not a readable image" in r.stderr, r.stderr
  assert not (tmp_path / "out").exists()


def test_client_says_when_the_model_takes_no_guidance(untrained_server, page, tmp_path):
  (tmp_path / "p.png").write_bytes(page)
  (tmp_path / "h").mkdir()
  r = client(untrained_server, str(tmp_path / "p.png"), f"--output_dir={tmp_path / 'out'}",
             f"--hints={tmp_path / 'h'}")
  assert r.returncode == 2 and "no colorize_guided signature" in r.stderr, r.stderr


# --- the in-process API --------------------------------------------------------------------------

def test_in_process_api_with_hints_and_a_reference(server, guided_export, page, reference,
                                                   tmp_path):
  from serving import inference
  base = guided_export
  (tmp_path / "page.png").write_bytes(page)
  hint = rgba_png(150, 100, [(50, 75, 6)])
  (tmp_path / "hint.png").write_bytes(hint)
  out = inference.process_single_image(base, str(tmp_path / "page.png"), str(tmp_path / "o.png"),
                                       hints=str(tmp_path / "hint.png"), reference=reference)
  # in-process and served results are the same bytes
  assert open(out, "rb").read() == png_of(guided(server, page, hint, reference))
  inference.process_single_image(base, str(tmp_path / "page.png"), str(tmp_path / "auto.png"))
  assert open(tmp_path / "auto.png", "rb").read() == automatic(server, page)

  pages_dir, hints_dir = tmp_path / "pages", tmp_path / "hints"
  pages_dir.mkdir()
  hints_dir.mkdir()
  for name in ("a.png", "b.png"):
    (pages_dir / name).write_bytes(page)
  (hints_dir / "a.png").write_bytes(hint)
  (hints_dir / "b.png").write_bytes(hint[:40])                   # cut short: b fails, a goes
  report = inference.batch_colorize(base, str(pages_dir), str(tmp_path / "batch"),
                                    hints=str(hints_dir), progress=False)
  assert [os.path.basename(p) for p in report.done] == ["a.png"]
  (failed, reason), = report.failed.items()
  assert failed.endswith("b.png") and f"hints file {hints_dir / 'b.png'}: not a readable" in reason
  assert (tmp_path / "batch" / "a.png").read_bytes() == png_of(guided(server, page, hint))
  with pytest.raises(ValueError, match="reference: not a readable image"):
    inference.batch_colorize(base, str(pages_dir), str(tmp_path / "x"), reference=b"junk")
