"""The Streamlit page shared with visitors (issue 19, attacks 2-4): no visitor can make it load
a path or reach a URL that its operator did not list, or exhaust the host.

Real Streamlit (AppTest runs the page's script with its session state and widgets), real
exports (tests/serving_support.py's untrained one, where which colours come out does not
matter), a real stand-in server, and real loopback HTTP servers for the request forgeries
(tests/traps.py). The "visitor" sets what a browser can send: widget values and session
state, under any key.
"""
import concurrent.futures
import io
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from tests import traps
from tests import serving_support as support

pytestmark = pytest.mark.slow   # the Streamlit page run by AppTest, a model run per test

APP = f"{support.ROOT}/serving/streamlit_app.py"
TIMEOUT = 300
REST = "TF Serving URL"
OPERATOR_ENV = ("KOALA_MODEL_PATH", "KOALA_MODELS_ROOT", "KOALA_SERVER", "KOALA_MODEL_NAME",
                "KOALA_LOCAL", "KOALA_MAX_FILES", "KOALA_MAX_CBZ_PAGES", "KOALA_MAX_RUN_MPX",
                "KOALA_MAX_SESSION_MB")


@pytest.fixture(scope="module")
def base(untrained_export):
  return untrained_export


@pytest.fixture
def operator(monkeypatch):
  """The page's operator configuration, as environment variables, for one test; the page
  listens on loopback (the repository's .streamlit/config.toml) unless the test says otherwise."""
  for name in OPERATOR_ENV:
    monkeypatch.delenv(name, raising=False)
  address = st_config.get_option("server.address")
  st_config.set_option("server.address", "127.0.0.1")

  def configure(**env):
    for name, value in env.items():
      monkeypatch.setenv(name, str(value))
  yield configure
  st_config.set_option("server.address", address)


@pytest.fixture
def internal():
  """An internal service that no visitor may reach through the page: it records requests."""
  with traps.Trap(200, b"{}") as trap:
    yield trap


def page(height=240, width=170, seed=0) -> bytes:
  return support.png_bytes(support.task_page(height, width, seed=seed)[0])


def cbz(pages: int) -> bytes:
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z:
    for i in range(pages):
      z.writestr(f"{i:03d}.png", page(64, 48, seed=i))
  return buf.getvalue()


def tone_page(height: int, width: int) -> bytes:
  """Many pixels in few bytes: a 4000 x 3000 screentone page is a 23 KB PNG, and its colour
  version tens of MB (issue 19 kept 60 MB in a session from 32 KiB of uploads this way)."""
  y, x = np.mgrid[:height, :width]
  tone = np.where((x // 4 + y // 4) % 2 == 0, 30, 250).astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(tone).save(buf, "PNG", optimize=True)
  return buf.getvalue()


def new_app(**session) -> AppTest:
  at = AppTest.from_file(APP, default_timeout=TIMEOUT)
  for key, value in session.items():
    at.session_state[key] = value
  at.run()
  return at


def colorize(at: AppTest, files) -> AppTest:
  at.file_uploader(key="uploads").set_value(files).run()
  return at.button(key="colorize").click().run()


def results(at: AppTest):
  return at.session_state["koala_results"][2] if "koala_results" in at.session_state else None


def errors(at: AppTest) -> list[str]:
  return [e.value for e in at.error]


# --- what a visitor may pick ---------------------------------------------------------------------

def test_a_shared_page_has_no_path_or_url_field(base, operator, internal):
  operator(KOALA_MODEL_PATH=base)
  at = new_app()
  assert not at.exception
  assert len(at.text_input) == 0
  assert at.selectbox(key="model_choice").options == ["untrained"]
  assert len(at.radio) == 0                 # no server listed: none offered

  operator(KOALA_SERVER=internal.url, KOALA_MODEL_NAME="koala,other")
  at = new_app()
  assert at.radio(key="source").options == ["Local SavedModel directory", REST]
  at.radio(key="source").set_value(REST).run()
  assert len(at.text_input) == 0
  assert at.selectbox(key="server_choice").options == [f"koala on {internal.url}",
                                                       f"other on {internal.url}"]


def test_the_session_state_cannot_make_it_load_another_export(base, operator, tmp_path):
  marker = tmp_path / "marker"
  crafted = traps.crafted_export(tmp_path / "crafted", marker)
  operator(KOALA_MODEL_PATH=base)
  at = new_app(model_path=crafted, model_choice=crafted, source="Local SavedModel directory")
  colorize(at, ("p.png", page(), "image/png"))
  assert not at.exception and not errors(at), errors(at)
  assert not marker.exists(), "the visitor's export ran on the host"
  (result,) = results(at)
  assert Image.open(io.BytesIO(result.download)).size == (170, 240)   # the operator's model's


def test_the_session_state_cannot_make_it_reach_a_url(base, operator, internal):
  operator(KOALA_MODEL_PATH=base)            # no server listed
  at = new_app(source=REST, server=internal.url, model_name="koala",
               server_choice=f"koala on {internal.url}")
  colorize(at, ("p.png", page(), "image/png"))
  assert not at.exception
  assert internal.requests == []
  assert results(at) is not None            # coloured by the operator's export instead


@pytest.mark.parametrize("address", ["0.0.0.0", "", "192.0.2.7"])
def test_local_mode_is_refused_unless_the_page_listens_on_loopback(address, base, operator,
                                                                  tmp_path):
  marker = tmp_path / "marker"
  crafted = traps.crafted_export(tmp_path / "crafted", marker)
  operator(KOALA_MODEL_PATH=base, KOALA_LOCAL=1)
  st_config.set_option("server.address", address)
  at = new_app(model_path=crafted)
  assert len(at.text_input) == 0
  colorize(at, ("p.png", page(), "image/png"))
  assert not at.exception and not marker.exists()


def test_local_mode_on_loopback_keeps_the_free_fields(base, operator, tmp_path):
  operator(KOALA_LOCAL=1)
  at = new_app()
  at.text_input(key="model_path").set_value(str(tmp_path / "elsewhere")).run()
  colorize(at, ("p.png", page(), "image/png"))
  assert errors(at)[0].startswith(f"no SavedModel at {tmp_path / 'elsewhere'}")  # the full path
  at.text_input(key="model_path").set_value(base).run()
  colorize(at, ("p.png", page(), "image/png"))
  assert not at.exception and not errors(at), errors(at)
  at.radio(key="source").set_value(REST).run()
  assert at.text_input(key="server").value == "http://localhost:8501"


def test_exports_under_a_root_are_offered_as_a_list(base, operator, tmp_path, monkeypatch):
  """The root, given after `--` of `streamlit run` as the README says: its sub-folders that
  hold an export, by name; nothing else."""
  root = tmp_path / "models"
  root.mkdir()
  os.symlink(base, root / "alpha")
  os.symlink(os.path.join(base, "1"), root / "beta")
  (root / "notes").mkdir()
  (root / "notes" / "readme.txt").write_text("not an export")
  operator()
  monkeypatch.setattr(sys, "argv", [APP, f"--models_root={root}", "--max_files=3"])
  at = new_app()
  assert at.selectbox(key="model_choice").options == ["alpha", "beta"]
  at.selectbox(key="model_choice").set_value("beta").run()
  colorize(at, ("p.png", page(), "image/png"))
  assert not at.exception and not errors(at), errors(at)
  assert results(at)[0].download is not None


def test_a_wrong_operator_option_is_a_sentence(operator, monkeypatch):
  operator(KOALA_SERVER="http://127.0.0.1:8501/v1?x=")
  at = new_app()
  assert not at.exception
  (error,) = errors(at)
  assert error.startswith("This page is not set up correctly: --server / KOALA_SERVER: not a "
                          "server URL")
  operator(KOALA_SERVER="")
  monkeypatch.setattr(sys, "argv", [APP, "--max_files=0"])
  at = new_app()
  assert "argument --max_files" in errors(at)[0]


def test_seven_spellings_of_one_export_load_it_once(base, tmp_path):
  from serving import exports
  os.symlink(base, tmp_path / "link")
  spellings = [base, base + "/", base + "//", os.path.join(base, "1"), base + "/./1/",
               os.path.relpath(base), str(tmp_path / "link")]
  loaded = [exports.load_model(path) for path in spellings]
  assert all(model is loaded[0] for model in loaded)


# --- a listed server that misbehaves ----------------------------------------------------------

def test_a_listed_server_that_redirects_or_leaks_is_a_status_and_a_sentence(operator, internal):
  target = internal.url + "/v1/models/koala"
  with traps.Trap(307, b"", {"Location": target}) as redirector:
    operator(KOALA_SERVER=redirector.url, KOALA_MODEL_PATH="unused")
    at = new_app()
    at.radio(key="source").set_value(REST).run()
    colorize(at, ("p.png", page(), "image/png"))
  assert (errors(at) == [f"model status at {redirector.url} answered 307: a redirect, which "
                         "this client does not follow"])
  assert internal.requests == []
  with traps.Trap(500, b'{"error": "internal-token-5f2a in /srv/app/secrets.yaml"}') as bad:
    operator(KOALA_SERVER=bad.url)
    at = new_app()
    at.radio(key="source").set_value(REST).run()
    colorize(at, ("p.png", page(), "image/png"))
  assert errors(at) == [f"model status at {bad.url} answered 500: the server failed"]


# --- caps -------------------------------------------------------------------------------------

def test_files_per_run(base, operator):
  operator(KOALA_MODEL_PATH=base, KOALA_MAX_FILES=2)
  at = new_app()
  colorize(at, [(f"p{i}.png", page(seed=i), "image/png") for i in range(3)])
  assert errors(at) == ["3 files; this page colours at most 2 in one run. Remove some and press "
                        "Colorize again."]
  assert results(at) is None


def test_pages_per_cbz_counted_before_anything_is_inflated(base, operator):
  operator(KOALA_MODEL_PATH=base, KOALA_MAX_CBZ_PAGES=3)
  at = new_app()
  colorize(at, [("big.cbz", cbz(5), "application/zip"), ("small.cbz", cbz(3), "application/zip"),
                ("p.png", page(), "image/png")])
  assert not at.exception
  assert errors(at) == ["big.cbz: 5 pages; this page colours at most 3 pages of a .cbz in one "
                        "run. Split the archive, or use the command-line client."]
  big, small, single = results(at)
  assert big.download is None and small.download is not None and single.download is not None


def test_pixels_per_run(base, operator):
  operator(KOALA_MODEL_PATH=base, KOALA_MAX_RUN_MPX=0.05)      # one 240 x 170 page, not two
  at = new_app()
  colorize(at, [("a.png", page(seed=1), "image/png"), ("b.png", page(seed=2), "image/png")])
  assert errors(at) == ["not coloured: the pages of this run pass this page's limit of 0.05 Mpx "
                        "per run. Colour it in another run."]
  a, b = results(at)
  assert a.download is not None and b.download is None


def test_results_held_per_session_are_bounded_and_small(base, operator):
  """Two 4000 x 3000 screentone pages, 46 KB of uploads: past the session's cap a result is
  dropped, and says so; what is kept is each download once, and previews 420 px wide."""
  from serving import web_runs
  uploads = [("a.png", tone_page(4000, 3000), "image/png"),
             ("b.png", tone_page(4000, 3000), "image/png")]
  operator(KOALA_MODEL_PATH=base)
  at = new_app()
  colorize(at, uploads)
  assert not at.exception and not errors(at), errors(at)
  sizes = [len(pickle.dumps(result)) for result in results(at)]
  cap_mb = (sizes[0] + sizes[1] / 2) / 2 ** 20
  operator(KOALA_MAX_SESSION_MB=cap_mb)
  at = new_app()
  colorize(at, uploads)
  assert len(pickle.dumps(at.session_state["koala_results"])) <= cap_mb * 2 ** 20
  a, b = results(at)
  assert a.download is not None and b.download is None and b.previews == []
  assert errors(at) == [f"b.png: coloured, but not kept: the results of this run pass this "
                        f"page's limit of {cap_mb:g} MB per visitor. Colour fewer or smaller "
                        "pages per run."]
  for _, before, after in a.previews:
    assert Image.open(io.BytesIO(before)).width == Image.open(io.BytesIO(after)).width == \
        web_runs.PREVIEW_WIDTH
  assert a.held_bytes < len(a.download) + 2_000_000


def test_one_model_run_at_a_time_per_process(base, untrained_server, operator):
  """Two visitors press Colorize together: their pages reach the model one run after the other
  (a relay in front of a real stand-in server counts the predictions in flight)."""
  with traps.Relay(untrained_server.url, hold=1.0) as relay:
    operator(KOALA_SERVER=relay.url, KOALA_MODEL_PATH=base)
    visitors = []
    for _ in range(2):
      at = new_app()
      at.radio(key="source").set_value(REST).run()
      at.file_uploader(key="uploads").set_value(
          [(f"p{i}.png", page(seed=i), "image/png") for i in range(2)]).run()
      visitors.append(at)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
      list(pool.map(lambda at: at.button(key="colorize").click().run(), visitors))
  assert relay.predictions == 4
  assert relay.max_predictions == 1
  for at in visitors:
    assert not at.exception and not errors(at), errors(at)
    assert all(r.download is not None for r in results(at))
    (bar,) = at.get("progress")
    assert bar.proto.text == "Coloured 2 of 2 pages"

