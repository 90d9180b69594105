"""Test helper for the serving tests: the builders of the models and exports they share, pages of
the synthetic task, and a real stand-in server process on a loopback port.

The builders are plain functions that write into the folder they are given; tests/conftest.py
runs each once per test session as a session fixture (exporting Inception-ResNet-v2 costs tens
of seconds on a CPU, training a minute), so a test asks for `gray_job`, `guided_export`,
`tiny_server` and the like by name.

  * the task is the trainer tests' (tests/trainer_records.py): flat shapes whose colour follows
    from their gray level. Training runs through trainer.task itself, on a narrow model at 56 x
    56 (the export reads the colorizer's input size, so the served path is the real one).
  * the embeddings in the records come from the real embedder the export rebuilds
    (Inception-ResNet-v2, random weights, seed 0), so serving feeds the model the same signal as
    training did.
  * "saturated" is the trained colorizer with a tiny SavedModel embedder (the `hub:<path>`
    route) and its last layer's weights times SATURATION, so that most predicted colours lie
    far outside the sRGB gamut, as other trained weights may put them.
  * "guided" is the guided colorizer (trainer.model.build_guided_colorizer, narrow, at 56 x 56)
    with the tiny embedder, for the colorize_guided signature's tests: they test how hints and
    references reach the network (geometry, byte equality, errors), which holds for any weights,
    so it is not trained. "untrained" is the SPEC colorizer the same way, for what an export
    without guidance answers to guidance, and for the server and the plumbing around an export
    (REST conformance, hostile clients, load), where only the server is under test and
    Inception's 0.3 s per request would make 200 requests cost minutes on 2 cores.
  * "manga" is a guided model trained for real on manga renderings (pipeline.run --render=manga)
    of the hint task's art.
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


@functools.cache
def workdir() -> str:
  """Where the servers and Streamlit apps the tests start write their logs."""
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


def write_task_records(records_dir: str) -> str:
  """The trainer tests' task with real embeddings of each image's neutral gray at 299
  (Inception-ResNet-v2, random weights, seed 0: the embedder the export rebuilds)."""
  from koala import embedder as embedder_lib
  from koala import images
  from tests import trainer_records
  embedder = embedder_lib.load_embedder("inception_resnet_v2", "random", 0)
  rng = np.random.default_rng(0)
  counts = trainer_records.GRAY_JOB_COUNTS
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
  return records_dir


def train_task_job(records_dir: str, job_dir: str):
  """trainer.task on the task records: the one trained gray job of a test run
  (trainer_records.GRAY_JOB_TRAINING) -> (model, history)."""
  from tests import trainer_records
  from trainer import task
  return task.train(task.TrainConfig(records_dir=records_dir, job_dir=job_dir,
                                     **trainer_records.GRAY_JOB_TRAINING))


def write_tiny_embedder(path: str) -> str:
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

  tf.saved_model.save(Tiny(), path)
  return path


SATURATION = 3.0   # the "saturated" export's factor on the colorizer's last layer


def tiny_job_info(tiny_embedder: str):
  """The tiny hub module as a job's embedder (no identity: the export takes the rebuilt one)."""
  from koala.embedder import EmbedderInfo
  from trainer import artifacts
  return artifacts.TrainedModelInfo(EmbedderInfo(name=f"hub:{tiny_embedder}", weights="",
                                                 identity="", random_weights=True))


def save_untrained_job(job_dir: str, guided: bool, tiny_embedder: str) -> str:
  """A job dir holding a narrow colorizer (guided or not; seeded, untrained) and the tiny
  embedder."""
  import keras
  from trainer import artifacts, model as model_lib
  keras.utils.set_random_seed(3)
  build = model_lib.build_guided_colorizer if guided else model_lib.build_colorizer
  model = build(image_size=SMALL["image_size"], width=SMALL["width"])
  artifacts.save_trained(model, tiny_job_info(tiny_embedder), artifacts.model_dir(job_dir))
  return job_dir


def save_saturated_job(trained_job: str, job_dir: str, tiny_embedder: str) -> str:
  """The trained job's colorizer with the tiny embedder and its last layer's weights times
  SATURATION."""
  from trainer import artifacts
  model, _ = artifacts.load_trained(trained_job)
  last = [layer for layer in model.layers if layer.weights][-1]
  last.set_weights([w * SATURATION for w in last.get_weights()])
  artifacts.save_trained(model, tiny_job_info(tiny_embedder), artifacts.model_dir(job_dir))
  return job_dir


def export_job(job_dir: str, base: str, **options) -> str:
  """<base>/1: the job exported for TF Serving (options: trainer.export's, e.g. max_pixels)
  -> base, the model base path a server takes."""
  from trainer.export import build as export
  export.export(job_dir, base, 1, **options)
  return base


MANGA_TRAIN_IMAGES = 48


def write_manga_records(out: str, art: str, tiny_embedder: str) -> str:
  """pipeline.run --render=manga on the hint task's colour art (two renderings an image)."""
  from PIL import Image
  from pipeline import run as pipeline_run
  from tests import trainer_records
  os.makedirs(art, exist_ok=True)
  rng = np.random.default_rng(5)
  for i in range(MANGA_TRAIN_IMAGES):
    Image.fromarray(trainer_records.hint_task_art(rng)).save(os.path.join(art, f"s{i}.png"))
  pipeline_run.run([f"--input={art}", f"--output_dir={out}", f"--embedder=hub:{tiny_embedder}",
                    "--render=manga", "--renderings_per_image=2", "--val_fraction=0.15",
                    "--test_fraction=0.1", "--direct_running_mode=in_memory",
                    "--direct_num_workers=1"])
  return out


def train_manga_job(records_dir: str, job_dir: str) -> str:
  """trainer.task --hints on the manga records (narrow, 56 x 56, ~1 min on 2 cores)."""
  from trainer import task
  task.train(task.TrainConfig(records_dir=records_dir, job_dir=job_dir, learning_rate=1e-3,
                              epochs=3, batch_size=8, steps_per_epoch=100, seed=0, verbose=0,
                              hints=True, **SMALL))
  return job_dir


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

  def cpu_seconds(self) -> float:
    """User and system CPU time the process has used so far, all its threads together."""
    with open(f"/proc/{self.proc.pid}/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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


@functools.cache
def _saved_model(base: str):
  import tensorflow as tf
  return tf.saved_model.load(os.path.join(base, "1"))


def colorize_in_process(base: str, image: bytes, hints: bytes | None = None,
                        reference: bytes | None = None) -> bytes:
  """The export's own PNG for a page, its signatures called in this process by the names the
  REST API uses: colorize_guided with the hint image and the reference (b"" for none), or
  serving_default when neither is given. What a server, the client, the batch job or the web
  page answers for the same page and guidance must be these bytes."""
  import tensorflow as tf
  model = _saved_model(base)
  if hints is None and reference is None:
    out = model.signatures["serving_default"](image_bytes=tf.constant([image]))
  else:
    out = model.signatures["colorize_guided"](
        image_bytes=tf.constant([image]), hints_bytes=tf.constant([hints or b""]),
        reference_bytes=tf.constant([reference or b""]))
  return out["png_bytes"].numpy()[0]
