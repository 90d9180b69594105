"""The export runs on the TensorFlow Serving release the Dockerfile pins, and gives the same result.

TF Serving trails TensorFlow (the project builds with TensorFlow 2.21; the newest TF Serving is
2.20), so an export could use an op or an op attribute the server does not know and fail to load
there. No TF Serving binary runs here; its closest stand-in is the TensorFlow of the same
version: `tensorflow-cpu==<TF_SERVING_VERSION>` in a side virtualenv, made once under
out/tf<version>-venv (ignored by git; about 30 s from PyPI and 1.5 GB on disk, reused by later
runs).

The test exports a really trained model with the project's TensorFlow, calls EVERY signature the
SavedModel has on the same inputs in both versions, and requires the same outputs: the same PNG
bytes from serving_default, and float tensors equal to float32 rounding. A signature added later
is covered without touching this file, unless it takes an input of a new name (then add an
example value to EXAMPLE_INPUTS: the test says so).
"""
import os
import pickle
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests import serving_support

ROOT = serving_support.ROOT
pytestmark = pytest.mark.slow   # a second TensorFlow, and the trained exports


def serving_version() -> str:
  with open(os.path.join(ROOT, "Dockerfile")) as f:
    return re.search(r"^ARG TF_SERVING_VERSION=(\S+)", f.read(), re.M).group(1)


def side_python(version: str) -> str:
  """The side virtualenv's interpreter, with tensorflow-cpu==version (made once, then reused)."""
  venv = os.path.join(ROOT, "out", f"tf{version}-venv")
  python = os.path.join(venv, "bin", "python")
  ready = os.path.join(venv, "koala-ready")
  if os.path.exists(ready):
    return python
  shutil.rmtree(venv, ignore_errors=True)   # a half-made one from an interrupted run
  subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
  pip = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"tensorflow-cpu=={version}"], capture_output=True, text=True, timeout=800)
  assert pip.returncode == 0, f"could not install tensorflow-cpu=={version}: {pip.stderr[-2000:]}"
  with open(ready, "w") as f:
    f.write(version)
  return python


def page_files() -> list[bytes]:
  """Pages as users send them: a gray PNG of the task, a colour JPEG, a wide gray JPEG, an
  animated GIF (koala.images.FORMATS), a phone's JPEG stored sideways (EXIF orientation 6)."""
  import io
  from PIL import Image
  from tests import corpus

  def encode(arrays, fmt, **kw):
    frames = [Image.fromarray(a) for a in arrays]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=len(frames) > 1, append_images=frames[1:], **kw)
    return buf.getvalue()
  gray, _ = serving_support.task_page(300, 200, seed=3)
  rng = np.random.default_rng(0)
  colour = np.clip(rng.normal(128, 60, (120, 160, 3)), 0, 255).astype(np.uint8)
  wide, _ = serving_support.task_page(90, 400, seed=4)
  frames = [serving_support.task_page(100, 140, seed=s)[0] for s in (5, 6)]
  sideways = corpus.oriented_jpeg(np.dstack([wide] * 3), 6, ">")
  return [serving_support.png_bytes(gray), encode([colour], "JPEG", quality=90),
          encode([wide], "JPEG", quality=95), encode(frames, "GIF", duration=100), sideways]


def hint_files() -> list[bytes]:
  """A hint image for each of page_files(): colour dots (a manga export fills their regions),
  none, an opaque image (every pixel a hint), dots drawn on a smaller image than the page, and
  none again for the rest."""
  rgba = np.zeros((300, 200, 4), np.uint8)
  rgba[40:52, 30:42] = (220, 40, 40, 255)
  rgba[200:212, 120:132] = (30, 40, 110, 255)
  rgba[100:106, 150:156] = (255, 255, 255, 255)
  small = np.zeros((30, 40, 4), np.uint8)
  small[10:14, 5:9] = (60, 160, 80, 255)
  hints = [serving_support.png_bytes(rgba, "RGBA"), b"", page_files()[2],
           serving_support.png_bytes(small, "RGBA")]
  return (hints + [b""] * len(page_files()))[:len(page_files())]


@pytest.fixture(scope="module")
def tf_serving_python() -> str:
  """The side virtualenv's interpreter: made in setup (a minute or more the first time, more
  with a cold pip cache), so its cost is not charged to the first test's timeout."""
  return side_python(serving_version())


@pytest.fixture
def export(request, kind) -> str:
  """The run's export of the parametrized kind (tests/conftest.py's `<kind>_export`)."""
  return request.getfixturevalue(f"{kind}_export")


EXAMPLE_INPUTS = {   # input name -> (shape with None filled) -> example value
    "l": lambda shape: np.random.default_rng(1).uniform(0, 100, shape).astype(np.float32),
    "embedding": lambda shape: np.abs(np.random.default_rng(2).normal(0, 0.5, shape)).astype(
        np.float32),
}


def example_feed(signature) -> dict:
  import tensorflow as tf
  _, specs = signature.structured_input_signature
  feed = {}
  for name, spec in specs.items():
    if name == "hints_bytes":
      feed[name] = np.array(hint_files(), dtype=object)
    elif spec.dtype == tf.string and name.endswith("_bytes"):
      feed[name] = np.array(page_files(), dtype=object)
    elif name in EXAMPLE_INPUTS:
      feed[name] = EXAMPLE_INPUTS[name](tuple(2 if d is None else d for d in spec.shape))
    else:
      pytest.fail(f"no example value for input {name!r} ({spec}): add one to EXAMPLE_INPUTS")
  return feed


@pytest.mark.parametrize("kind,signatures", [
    ("inception", {"serving_default", "colorize_tensors"}),
    # the guided model's export adds colorize_guided (page + hint image + reference)
    ("guided", {"serving_default", "colorize_tensors", "colorize_guided"}),
    # a manga job: the same signatures, its pages composed by the manga rule, its dots filling
    # their regions (trainer.export.fill)
    ("manga", {"serving_default", "colorize_tensors", "colorize_guided"})])
def test_every_signature_gives_the_same_result_on_the_pinned_tf_serving_version(
    tmp_path, kind, signatures, export, tf_serving_python):
  import tensorflow as tf
  version = serving_version()
  python = tf_serving_python
  saved_model = os.path.join(export, sorted(os.listdir(export), key=int)[-1])

  model = tf.saved_model.load(saved_model)
  inputs = {name: example_feed(fn) for name, fn in model.signatures.items()}
  assert signatures == set(inputs)
  ours = {name: {k: v.numpy() for k, v in model.signatures[name](
      **{n: tf.constant(x) for n, x in feed.items()}).items()} for name, feed in inputs.items()}

  with open(tmp_path / "inputs.pkl", "wb") as f:
    pickle.dump(inputs, f)
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  probe = subprocess.run(
      [python, "-I", os.path.join(ROOT, "tests", "runtime_probe.py"), saved_model,
       str(tmp_path / "inputs.pkl"), str(tmp_path / "outputs.pkl")],
      capture_output=True, text=True, timeout=600, env=env)
  assert probe.returncode == 0, f"TensorFlow {version} could not run the export:\n" + \
      probe.stderr[-4000:]
  with open(tmp_path / "outputs.pkl", "rb") as f:
    theirs = pickle.load(f)

  assert theirs["tensorflow"] == version
  assert theirs["signatures"] == sorted(inputs)
  for name, outputs in ours.items():
    assert theirs["outputs"][name].keys() == outputs.keys(), name
    for key, value in outputs.items():
      other = theirs["outputs"][name][key]
      if value.dtype == object:   # encoded images: the very same bytes
        assert list(other) == list(value), f"{name}.{key} differs under TensorFlow {version}"
      else:
        assert other.dtype == value.dtype and other.shape == value.shape, f"{name}.{key}"
        np.testing.assert_allclose(other, value, rtol=1e-5, atol=1e-3,
                                   err_msg=f"{name}.{key} under TensorFlow {version}")
