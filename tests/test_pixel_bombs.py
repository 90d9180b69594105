"""Issue 19's pixel bombs at every entry point: GIFs whose frames decode past the pixel cap,
although their header's logical screen is small (TensorFlow's decoder reads every frame and
draws on a canvas the size of the largest). Each is refused with a sentence, before decoding,
as the page, the hint image and the reference: over REST by the stand-in (400), by the client,
by the in-process batch job, by the Beam batch job (serving.beam_colorize) and by the web page. The
export is the guided one of tests/serving_support.py with a 1 Mpx cap, so that where a bomb gets
through (today's main) it costs a 2 Mpx page, not a 64 Mpx one; tests/test_decoder_contract.py has
the 8000 x 8000 ones.
"""
import base64
import json
import os
import subprocess
import sys

import pytest
import requests
from streamlit.testing.v1 import AppTest

from koala import schema
from serving import beam_colorize as colorize, inference
from tests import corpus
from tests import serving_support as support

pytestmark = pytest.mark.slow   # an export of its own, a server, a Beam run

CAP = 1_000_000
BOMBS = {   # name -> (file, what the refusal says)
    "first.gif": (corpus.blank_gif((10, 10), [(1500, 1500, 0, 0)]),
                  "GIF frame outside its logical screen"),
    "second.gif": (corpus.blank_gif((10, 10), [(10, 10, 0, 0), (1500, 1500, 0, 0)]),
                   "GIF frame outside its logical screen"),
    "frames.gif": (corpus.blank_gif((300, 300), [(300, 300, 0, 0)] * 12),   # 1.08 Mpx in all
                   "Image too large"),
}


@pytest.fixture(scope="module")
def export(untrained_guided_job, tmp_path_factory):
  """The "guided" export's model exported with a low --max_pixels, for the tests of the cap
  itself (a page just past a low cap costs little, even where the cap does not hold)."""
  return support.export_job(untrained_guided_job, str(tmp_path_factory.mktemp("capped") / "koala"),
                            max_pixels=CAP)


@pytest.fixture(scope="module")
def server(export):
  s = support.Server(export, "koala")
  yield s
  assert s.stop() == 0, s.output()


def page() -> bytes:
  return support.png_bytes(support.task_page(120, 90)[0])


def b64(data: bytes) -> dict:
  return {"b64": base64.b64encode(data).decode()}


def predict(server, body: dict) -> requests.Response:
  return requests.post(server.url + "/v1/models/koala:predict", data=json.dumps(body), timeout=120)


def test_the_bombs_are_small():
  assert all(len(data) < 12_000 for data, _ in BOMBS.values())


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_rest_answers_400_for_a_bomb_as_page_hints_or_reference(server, name):
  bomb, says = BOMBS[name]
  r = predict(server, {"instances": [b64(bomb)]})
  assert r.status_code == 400 and says in r.json()["error"], (r.status_code, r.text[:300])
  for field in ("image_bytes", "hints_bytes", "reference_bytes"):
    instance = {"image_bytes": b64(page()), "hints_bytes": "", "reference_bytes": "",
                field: b64(bomb)}
    r = predict(server, {"signature_name": "colorize_guided", "instances": [instance]})
    assert r.status_code == 400, (field, r.status_code, r.text[:300])
    named = "" if field == "image_bytes" else f"{field}: "
    assert named + says in r.json()["error"], r.json()["error"][:300]
  assert predict(server, {"instances": [b64(page())]}).status_code == 200   # still serving


def write_bombs(folder) -> None:
  folder.mkdir()
  for name, (data, _) in BOMBS.items():
    (folder / name).write_bytes(data)
  (folder / "good.png").write_bytes(page())


def test_the_client_and_the_batch_job_refuse_the_bombs_and_colour_the_rest(server, export,
                                                                            tmp_path):
  write_bombs(tmp_path / "in")
  r = subprocess.run([sys.executable, "-m", "serving.client", str(tmp_path / "in"),
                      f"--server={server.url}", f"--output_dir={tmp_path / 'client'}",
                      "--no_progress"], cwd=support.ROOT, capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 1, r.stderr
  for name in ("first.gif", "second.gif"):     # refused by the client's own header check
    assert f"{name}" in r.stderr and "outside its logical screen" in r.stderr
  assert "frames.gif" in r.stderr and "Image too large" in r.stderr   # by the server
  assert sorted(os.listdir(tmp_path / "client")) == ["good.png"]
  report = inference.batch_colorize(export, str(tmp_path / "in"), str(tmp_path / "batch"),
                                    progress=False)
  assert len(report.done) == 1 and len(report.failed) == 3, report
  for page_path, reason in report.failed.items():
    assert BOMBS[os.path.basename(page_path)][1].removeprefix("GIF frame ") in reason, reason
  assert sorted(os.listdir(tmp_path / "batch")) == ["good.png"]


def test_the_beam_job_rejects_the_bombs_with_reasons(export, tmp_path):
  write_bombs(tmp_path / "in")
  colorize.run([f"--model={export}", f"--input={tmp_path / 'in'}",
                f"--output_dir={tmp_path / 'out'}"])
  rejected = {os.path.basename(json.loads(line)["path"]): json.loads(line)["reason"]
              for line in (tmp_path / "out" / schema.REJECTED).read_text().splitlines()}
  assert sorted(rejected) == sorted(BOMBS)
  for name, reason in rejected.items():
    assert BOMBS[name][1].removeprefix("GIF frame ") in reason, (name, reason)
  assert (tmp_path / "out" / "good.png").exists()


def test_the_web_page_refuses_the_bombs_with_sentences(export, monkeypatch):
  monkeypatch.setenv("KOALA_MODEL_PATH", export)
  at = AppTest.from_file(f"{support.ROOT}/serving/streamlit_app.py", default_timeout=300)
  at.run()
  files = [(name, data, "image/gif") for name, (data, _) in sorted(BOMBS.items())]
  at.file_uploader(key="uploads").set_value(files + [("good.png", page(), "image/png")]).run()
  at.button(key="colorize").click().run()
  assert not at.exception
  errors = [e.value for e in at.error]
  assert len(errors) == 3 and all("Traceback" not in e for e in errors), errors
  assert sum("outside its logical screen" in e for e in errors) == 2, errors
  assert sum("Image too large" in e for e in errors) == 1, errors
  assert [b.label for b in at.download_button] == ["Download PNG"]
