"""serving/streamlit_app.py driven headlessly by Streamlit's AppTest: upload, colorize, download,
with a real exported model, in-process and through a real REST server; and every failure a
user can cause shows as a sentence, never as a traceback.

The model is the serving tests' one (tests/serving_support.py): trained on the synthetic task
whose shapes' colours follow from their gray levels, exported with the real Inception-ResNet-v2
(random weights) inside, so "coloured" can be checked, not just "an image came back". The
page is configured as its operator would (environment variables; test_streamlit_shared.py has
what a visitor of a shared page must not be able to do).
"""
import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from koala import colour
from tests import serving_support as support

pytestmark = pytest.mark.slow   # the Streamlit page on the trained Inception export

APP = f"{support.ROOT}/serving/streamlit_app.py"
TIMEOUT = 300          # the first run loads Inception-ResNet-v2 from the SavedModel


@pytest.fixture(scope="module")
def base(inception_export):
  return inception_export


def page(height=240, width=170, seed=0) -> bytes:
  return support.png_bytes(support.task_page(height, width, seed=seed)[0])


def cbz() -> bytes:
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z:
    z.writestr("ComicInfo.xml", "<ComicInfo><Title>t</Title></ComicInfo>")
    z.writestr("p1.png", page(200, 140, seed=2))
    z.writestr("p2.png", page(210, 150, seed=3))
  return buf.getvalue()


def is_coloured(png: bytes) -> bool:
  lab = colour.rgb_to_lab(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
  return float(np.percentile(colour.chroma(lab[..., 1:]), 90)) > 10


def new_app() -> AppTest:
  at = AppTest.from_file(APP, default_timeout=TIMEOUT)
  at.run()
  return at


@pytest.fixture
def operator(monkeypatch):
  """Sets the page's operator configuration (environment variables) for one test."""
  for name in ("KOALA_MODEL_PATH", "KOALA_MODELS_ROOT", "KOALA_SERVER", "KOALA_MODEL_NAME",
               "KOALA_LOCAL"):
    monkeypatch.delenv(name, raising=False)

  def configure(**env):
    for name, value in env.items():
      monkeypatch.setenv(name, value)
  return configure


def colorize(at: AppTest, files) -> AppTest:
  at.file_uploader(key="uploads").set_value(files).run()
  return at.button(key="colorize").click().run()


def results(at: AppTest):
  return at.session_state["koala_results"][2]


def test_upload_colorize_download_in_process(base, operator):
  operator(KOALA_MODEL_PATH=base)
  at = new_app()
  colorize(at, [("one.png", page(), "image/png"), ("book.cbz", cbz(), "application/zip")])
  assert not at.exception
  assert not at.error, [e.value for e in at.error]
  # Side by side: input and colour, for the page and the archive's two pages.
  captions = [c for img in at.image for c in img.captions]
  assert captions == ["one.png: input", "one.png: Koala's colour", "p1.png: input",
                      "p1.png: Koala's colour", "p2.png: input", "p2.png: Koala's colour"]
  assert [b.label for b in at.download_button] == ["Download PNG", "Download .cbz"]
  assert any("RANDOM weights" in w.value for w in at.warning)

  one, book = results(at)
  assert one.download_name == "one_koala.png"
  out = Image.open(io.BytesIO(one.download))
  assert out.format == "PNG" and out.size == (170, 240)
  assert is_coloured(one.download)
  with zipfile.ZipFile(io.BytesIO(book.download)) as z:
    assert sorted(z.namelist()) == ["ComicInfo.xml", "p1.png", "p2.png"]
    assert is_coloured(z.read("p2.png"))
    assert Image.open(io.BytesIO(z.read("p2.png"))).size == (150, 210)

  # Pressing a download button reruns the script: the results stay, nothing is recoloured.
  at.download_button[0].click().run()
  assert not at.exception
  assert results(at) == [one, book]
  assert len(at.download_button) == 2


def test_through_a_tf_serving_url(inception_server, operator):
  server = inception_server
  operator(KOALA_SERVER=server.url)
  at = new_app()
  assert at.selectbox(key="server_choice").options == [f"koala on {server.url}"]
  colorize(at, ("scan.png", page(seed=5), "image/png"))
  assert not at.exception and not at.error, [e.value for e in at.error]
  (scan,) = results(at)
  assert is_coloured(scan.download)
  assert any(server.url in w.value for w in at.warning)


def test_unreachable_server_is_a_sentence(operator):
  operator(KOALA_SERVER=f"http://127.0.0.1:{support.free_port()}")
  at = new_app()
  colorize(at, ("scan.png", page(), "image/png"))
  assert not at.exception
  (error,) = [e.value for e in at.error]
  assert error.startswith("cannot reach a model server at http://127.0.0.1:")
  assert "koala_results" not in at.session_state


def test_missing_model_folder_is_a_sentence(tmp_path, operator):
  operator(KOALA_MODEL_PATH=str(tmp_path / "nothing_here"))
  at = new_app()
  colorize(at, ("scan.png", page(), "image/png"))
  assert not at.exception
  (error,) = [e.value for e in at.error]
  # Shared: the visitor reads the model's name; the operator's folder is in the page's log only.
  assert error == ("The model 'nothing_here' is not available: no SavedModel in its folder yet "
                   "(the page's log names the folder).")


def test_bad_files_and_too_large_pages_are_reported_and_good_pages_still_coloured(base, operator):
  # 8000 x 6500 = 52 Mpx: refused from its header, before any pixel is decoded.
  huge = io.BytesIO()
  Image.new("L", (8000, 6500), 255).save(huge, "PNG")
  broken_cbz = b"PK\x03\x04 this is not a zip archive"
  operator(KOALA_MODEL_PATH=base)
  at = new_app()
  colorize(at, [("notes.png", b"these are my notes, not a page", "image/png"),
                ("huge.png", huge.getvalue(), "image/png"),
                ("broken.cbz", broken_cbz, "application/zip"),
                ("good.png", page(seed=7), "image/png")])
  assert not at.exception
  errors = [e.value for e in at.error]
  assert len(errors) == 3, errors
  assert errors[0].startswith("not an image Koala can read: not a readable image")
  assert "0x" not in errors[0]                      # no Python object addresses
  assert errors[1].startswith("page too large: 8000 x 6500 = 52 Mpx; the limit is 50 Mpx")
  assert errors[2].startswith("not a readable .cbz (zip) archive")
  assert all("Traceback" not in e for e in errors)
  notes, huge_page, broken, good = results(at)
  assert notes.download is huge_page.download is broken.download is None
  assert is_coloured(good.download)
  assert [b.label for b in at.download_button] == ["Download PNG"]


# --- guidance: hint dots and a reference (the guided model of serving_support) ----------------

def test_hint_dots_and_a_reference_steer_the_output(guided_export, operator):
  """What the page shows for a placed dot, and for a reference, is the export's colorize_guided
  of that page with the hint image the dot makes (serving.hint_dots) or with that reference,
  called in process, byte for byte: what holds for any weights. The untrained guided export's
  answer does change with each, so a page that lost the guidance on its way would fail."""
  from serving import hint_dots, streamlit_app
  operator(KOALA_MODEL_PATH=guided_export)
  data = page(150, 100, seed=4)
  at = new_app()
  colorize(at, ("p.png", data, "image/png"))
  assert not at.exception and not at.error, [e.value for e in at.error]
  assert results(at)[0].download == support.colorize_in_process(guided_export, data)
  auto = np.asarray(Image.open(io.BytesIO(results(at)[0].download)), np.int32)
  assert any("0 hint dots on p.png" in m.value for m in at.markdown)

  # What a click on the page stores (the browser test clicks for real).
  dot = hint_dots.Dot(75, 50, (30, 200, 40))
  at.session_state[streamlit_app.HINTS] = {streamlit_app.page_key("p.png", data): [dot]}
  at.run()
  assert any("1 hint dot on p.png" in m.value for m in at.markdown)
  at.button(key="colorize").click().run()
  assert not at.exception and not at.error, [e.value for e in at.error]
  hinted = results(at)[0].download
  assert hinted == support.colorize_in_process(guided_export, data,
                                               hints=hint_dots.hint_png(150, 100, [dot]))
  assert not np.array_equal(np.asarray(Image.open(io.BytesIO(hinted)), np.int32), auto)

  at.button(key="clear_dots").click().run()
  assert any("0 hint dots on p.png" in m.value for m in at.markdown)
  cover = support.png_bytes(np.full((60, 80, 3), (30, 60, 210), np.uint8))
  at.file_uploader(key="reference").set_value(("cover.png", cover, "image/png")).run()
  at.button(key="colorize").click().run()
  assert not at.exception and not at.error, [e.value for e in at.error]
  steered = results(at)[0].download
  assert steered == support.colorize_in_process(guided_export, data, reference=cover)
  assert not np.array_equal(np.asarray(Image.open(io.BytesIO(steered)), np.int32), auto)

  at.file_uploader(key="reference").set_value(("cover.png", b"not an image", "image/png")).run()
  at.button(key="colorize").click().run()
  assert not at.exception
  (error,) = [e.value for e in at.error]
  assert error.startswith("the reference image is not an image Koala can read")


def test_guidance_for_a_model_without_it_is_a_sentence(base, operator):
  operator(KOALA_MODEL_PATH=base)
  at = new_app()
  cover = support.png_bytes(np.full((60, 80, 3), (30, 60, 210), np.uint8))
  at.file_uploader(key="reference").set_value(("cover.png", cover, "image/png")).run()
  colorize(at, ("p.png", page(), "image/png"))
  assert not at.exception
  (error,) = [e.value for e in at.error]
  assert error.startswith("This model takes no hints or reference image")
