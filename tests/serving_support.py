"""Test helper for the serving tests: a model really trained on the learnable synthetic task,
really exported, and a real stand-in server process on a loopback port.

Everything is built once per test process (exporting Inception-ResNet-v2 costs tens of seconds
on a CPU) and shared by the test modules; pytest's session fixtures would be built once per
module that imports them, so the cache lives here.

  * the task is the trainer tests' (tests/trainer_records.py): flat shapes whose colour follows
    from their gray level. Training runs through trainer.task itself, on a narrow model at 56 x
    56 (the export reads the colorizer's input size, so the served path is the real one).
  * the embeddings in the records come from the real embedder the export rebuilds
    (Inception-ResNet-v2, random weights, seed 0), so serving feeds the model the same signal as
    training did.
  * a second export swaps in a tiny SavedModel embedder through the `hub:<path>` route, for the
    REST conformance and load tests, where only the server is under test and Inception's
    0.3 s per request would make 200 requests cost minutes on 2 cores.
  * a third, "guided", is the guided colorizer (trainer.model.build_guided_colorizer, narrow, at
    56 x 56) with the tiny embedder, for the colorize_guided signature's tests: they test how
    hints and references reach the network (geometry, byte equality, errors), which holds for
    any weights, so it is not trained. "untrained" is the SPEC colorizer the same way, for what
    an export without guidance answers to guidance.
"""
from __future__ import annotations

import atexit
import functools
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

from koala import colour, schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(width=0.25, image_size=56)
TRAIN_IMAGES = 16


@functools.cache
def workdir() -> str:
  path = tempfile.mkdtemp(prefix="koala-serving-tests-")
  atexit.register(shutil.rmtree, path, True)
  return path


def gray_for_l(l: float) -> int:
  """The uint8 gray level whose L is closest to l."""
  return int(np.argmin(np.abs(colour.gray_to_l(np.arange(256, dtype=np.uint8)) - l)))


def task_page(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """A gray page of the synthetic task -> (gray uint8 (H, W), level index per pixel (H, W)).

  Large blocks, each a palette level; the background is the lightest level."""
  from tests import trainer_records
  levels = list(trainer_records.PALETTE)
  rng = np.random.default_rng(seed)
  label = np.full((height, width), len(levels) - 1, np.int64)
  rows, cols = 3, 2
  for r in range(rows):
    for c in range(cols):
      top, left = r * height // rows, c * width // cols
      label[top + height // 18: top + height // rows - height // 18,
            left + width // 12: left + width // cols - width // 12] = rng.integers(len(levels) - 1)
  grays = np.array([gray_for_l(v) for v in levels], np.uint8)
  return grays[label], label


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(array, mode).save(buf, "PNG")
  return buf.getvalue()


def _write_records(records_dir: str, embedder) -> None:
  """The trainer tests' task with real embeddings of each image's neutral gray at 299."""
  from koala import images
  from tests import trainer_records
  rng = np.random.default_rng(0)
  counts = {"train": TRAIN_IMAGES, "val": 4, "test": 2}
  for split, n in counts.items():
    pairs = [trainer_records.make_image(rng) for _ in range(n)]
    gray = [colour.to_uint8(colour.l_to_neutral_gray(l[..., 0])) for l, _ in pairs]
    emb = embedder.embed(np.stack([np.repeat(images.letterbox(g, schema.EMBEDDER_SIZE)[..., None],
                                             3, -1) for g in gray]))
    records = [trainer_records.serialize(l, ab, e, f"task/{split}/{i}.png", embedder.identity)
               for i, ((l, ab), e) in enumerate(zip(pairs, emb))]
    trainer_records.write_shard(f"{records_dir}/{split}/{split}-00000-of-00001.tfrecord", records)
  manifest = {"schema_version": schema.SCHEMA_VERSION, "counts": {"written": counts},
              "embedder": {"name": "inception_resnet_v2", "weights": "random",
                           "identity": embedder.identity, "random_weights": True},
              "options": {"embedder_seed": 0}}
  with open(os.path.join(records_dir, schema.MANIFEST), "w") as f:
    json.dump(manifest, f)


@functools.cache
def trained_job() -> str:
  """A job dir from trainer.task, trained on the synthetic task (300 steps, ~1 min on 2 cores)."""
  from koala import embedder as embedder_lib
  from trainer import task
  records, job = os.path.join(workdir(), "records"), os.path.join(workdir(), "job")
  _write_records(records, embedder_lib.load_embedder("inception_resnet_v2", "random", 0))
  task.train(task.TrainConfig(records_dir=records, job_dir=job, learning_rate=3e-3, epochs=3,
                              batch_size=8, steps_per_epoch=100, seed=1, verbose=0, **SMALL))
  return job


@functools.cache
def tiny_embedder() -> str:
  """A SavedModel feature-vector module (images in [0, 1] -> 1536-d), like a TF-Hub one."""
  import tensorflow as tf

  class Tiny(tf.Module):
    def __init__(self):
      super().__init__()
      self.w = tf.Variable(tf.random.stateless_normal((192, schema.EMBEDDING_DIM), (1, 2)) * 0.1)

    @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32)])
    def __call__(self, x):
      pooled = tf.image.resize(x, (8, 8), method="area")
      return tf.nn.relu(tf.reshape(pooled, (-1, 192)) @ self.w)

  path = os.path.join(workdir(), "tiny_embedder")
  tf.saved_model.save(Tiny(), path)
  return path


SATURATION = 3.0   # the "saturated" export's factor on the colorizer's last layer


def _tiny_embedder_info() -> dict:
  return {"name": f"hub:{tiny_embedder()}", "weights": "", "identity": "", "random_weights": True}


@functools.cache
def untrained_job(guided: bool) -> str:
  """A job dir holding a narrow colorizer (guided or not; seeded, untrained) and the tiny
  embedder."""
  import keras
  from trainer import artifacts, model as model_lib
  keras.utils.set_random_seed(3)
  build = model_lib.build_guided_colorizer if guided else model_lib.build_colorizer
  model = build(image_size=SMALL["image_size"], width=SMALL["width"])
  job = os.path.join(workdir(), f"job_untrained_{'guided' if guided else 'spec'}")
  artifacts.save_trained(model, _tiny_embedder_info(), artifacts.model_dir(job))
  return job


@functools.cache
def export_base(kind: str = "inception") -> str:
  """models/<kind>/1 from the trained job; kind "tiny" uses the tiny hub-style embedder;
  "saturated" is "tiny" with the last layer's weights times SATURATION, so that most predicted
  colours lie far outside the sRGB gamut, as other trained weights may put them; "guided" and
  "untrained" are untrained_job's; "manga" is manga_job's."""
  from trainer import artifacts
  from trainer.export import build as export
  if kind in ("guided", "untrained"):
    base = os.path.join(workdir(), "models", kind)
    export.export(untrained_job(kind == "guided"), base, 1)
    return base
  if kind == "manga":
    base = os.path.join(workdir(), "models", kind)
    export.export(manga_job(), base, 1)
    return base
  job = trained_job()
  if kind in ("tiny", "saturated"):
    model, _ = artifacts.load_trained(job)
    if kind == "saturated":
      last = [layer for layer in model.layers if layer.weights][-1]
      last.set_weights([w * SATURATION for w in last.get_weights()])
    tiny_job = os.path.join(workdir(), f"job_{kind}")
    artifacts.save_trained(model, _tiny_embedder_info(), artifacts.model_dir(tiny_job))
    job = tiny_job
  base = os.path.join(workdir(), "models", kind)
  export.export(job, base, 1)
  return base


MANGA_TRAIN_IMAGES = 48


@functools.cache
def manga_records() -> str:
  """pipeline.run --render=manga on the hint task's colour art (two renderings an image)."""
  from PIL import Image
  from pipeline import run as pipeline_run
  from tests import trainer_records
  art = os.path.join(workdir(), "manga_art")
  os.makedirs(art, exist_ok=True)
  rng = np.random.default_rng(5)
  for i in range(MANGA_TRAIN_IMAGES):
    Image.fromarray(trainer_records.hint_task_art(rng)).save(os.path.join(art, f"s{i}.png"))
  out = os.path.join(workdir(), "manga_records")
  pipeline_run.run([f"--input={art}", f"--output_dir={out}", f"--embedder=hub:{tiny_embedder()}",
                    "--render=manga", "--renderings_per_image=2", "--val_fraction=0.15",
                    "--test_fraction=0.1", "--direct_running_mode=in_memory",
                    "--direct_num_workers=1"])
  return out


@functools.cache
def manga_job() -> str:
  """trainer.task --hints on manga_records (narrow, 56 x 56, ~1 min on 2 cores)."""
  from trainer import task
  job = os.path.join(workdir(), "job_manga")
  task.train(task.TrainConfig(records_dir=manga_records(), job_dir=job, learning_rate=1e-3,
                              epochs=3, batch_size=8, steps_per_epoch=100, seed=0, verbose=0,
                              hints=True, **SMALL))
  return job


@functools.cache
def capped_export(max_pixels: int) -> str:
  """models/guided_<cap>/1: the "guided" export's model exported with a low --max_pixels, for
  the tests of the cap itself (a page just past a low cap costs little, even where the cap does
  not hold)."""
  from trainer.export import build as export
  base = os.path.join(workdir(), "models", f"guided_{max_pixels}")
  export.export(untrained_job(True), base, 1, max_pixels=max_pixels)
  return base


def untrained_export() -> str:
  """models/untrained/1: a freshly initialised narrow colorizer with the tiny embedder, exported
  without training (seconds, not the minute trained_job costs), for tests of the plumbing
  around an export (the batch job), where which colours come out does not matter. The same
  export as export_base("untrained") (two exports into one folder would collide)."""
  return export_base("untrained")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Server:
  """`python -m serving.server` (or another `module` with its flags) in a subprocess on a free
  loopback port."""

  def __init__(self, base_path: str, name: str = "koala", *extra: str,
               module: str = "serving.server", env: dict | None = None):
    self.port = free_port()
    self.url = f"http://127.0.0.1:{self.port}"
    self.log_path = os.path.join(workdir(), f"server-{self.port}.log")
    self.log = open(self.log_path, "w")
    self.proc = subprocess.Popen(
        [sys.executable, "-m", module, f"--model_base_path={base_path}",
         f"--model_name={name}", f"--rest_api_port={self.port}", *extra],
        cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env=env)
    atexit.register(self.stop)
    deadline = time.time() + 180
    while time.time() < deadline:
      if self.proc.poll() is not None:
        raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
      if "Exporting HTTP/REST API" in self.output():
        return
      time.sleep(0.2)
    self.stop()
    raise RuntimeError(f"server did not start: {self.output()}")

  def output(self) -> str:
    with open(self.log_path) as f:
      return f.read()

  def rss_mib(self, field: str = "VmRSS") -> float:
    """The process's resident memory now, or its peak so far with field="VmHWM"."""
    with open(f"/proc/{self.proc.pid}/status") as f:
      for line in f:
        if line.startswith(f"{field}:"):
          return int(line.split()[1]) / 1024.0
    return float("nan")

  def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int | None:
    if self.proc.poll() is None:
      self.proc.send_signal(sig)
      try:
        self.proc.wait(timeout)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()
    self.log.close()
    return self.proc.returncode
