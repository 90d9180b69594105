"""Where a training job puts its outputs, and how the export reads the trained model back.

This is the contract between the trainer and the serving export (trainer/export/), kept in
one small module so that neither side spells a path or a file name on its own:

  <model_dir>/colorizer.keras   the final trained Keras model (compiled, with optimizer state)
  <model_dir>/embedder.json     the records' manifest "embedder" section (name, weights,
                                identity, random_weights) plus "embedder_seed", so the export
                                can rebuild exactly the embedder that made the training records
  <model_dir>/rendering.json    what the model was trained to see ("gray", or a manga
                                rendering's name) and so how its pages are composed
                                (koala.colour.composition_for); absent in older jobs: gray

model_dir is $AIP_MODEL_DIR when Vertex AI sets it, else <job_dir>/model. Checkpoints and
TensorBoard logs follow Vertex's AIP_CHECKPOINT_DIR and AIP_TENSORBOARD_LOG_DIR the same way.
Every path may be local or gs://: files go through tf.io.gfile, which speaks both.
"""
from __future__ import annotations

import json
import os

MODEL_FILENAME = "colorizer.keras"
EMBEDDER_FILENAME = "embedder.json"
RENDERING_FILENAME = "rendering.json"
HISTORY_FILENAME = "history.json"
CURVES_FILENAME = "training_curves.png"

AIP_MODEL_DIR = "AIP_MODEL_DIR"
AIP_CHECKPOINT_DIR = "AIP_CHECKPOINT_DIR"
AIP_TENSORBOARD_LOG_DIR = "AIP_TENSORBOARD_LOG_DIR"

# The manifest's "embedder" keys the export needs (the manifest may add a warning text).
EMBEDDER_KEYS = ("name", "weights", "identity", "random_weights")


def join(base: str, *parts: str) -> str:
  """Joins with '/', which is right for local paths and for gs:// alike (os.path.join is not
  on Windows, and it would drop a gs:// base that a part starts with '/')."""
  return "/".join([base.rstrip("/")] + [p.strip("/") for p in parts])


def _env_or(name: str, default: str) -> str:
  value = os.environ.get(name, "").strip()
  return value.rstrip("/") if value else default


def model_dir(job_dir: str) -> str:
  """$AIP_MODEL_DIR if set, else <job_dir>/model."""
  return _env_or(AIP_MODEL_DIR, join(job_dir, "model"))


def checkpoint_dir(job_dir: str) -> str:
  """$AIP_CHECKPOINT_DIR if set, else <job_dir>/checkpoints."""
  return _env_or(AIP_CHECKPOINT_DIR, join(job_dir, "checkpoints"))


def tensorboard_dir(job_dir: str) -> str:
  """$AIP_TENSORBOARD_LOG_DIR if set, else <job_dir>/logs."""
  return _env_or(AIP_TENSORBOARD_LOG_DIR, join(job_dir, "logs"))


def read_text(path: str) -> str:
  import tensorflow as tf
  with tf.io.gfile.GFile(path, "r") as f:
    return f.read()


def write_bytes(path: str, data: bytes) -> None:
  """Writes a whole file (local or gs://), making its folder first."""
  import tensorflow as tf
  tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(data)


def write_json(path: str, obj) -> None:
  write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode("utf-8"))


def embedder_info(manifest: dict) -> dict:
  """The records' manifest -> what embedder.json holds (see the module docstring)."""
  section = manifest.get("embedder") or {}
  missing = [k for k in EMBEDDER_KEYS if k not in section]
  if missing:
    raise ValueError(f"the records' manifest has no embedder {missing}; was it written by "
                     "pipeline.run?")
  info = {k: section[k] for k in EMBEDDER_KEYS}
  info["embedder_seed"] = (manifest.get("options") or {}).get("embedder_seed")
  return info


def save_trained(model, info: dict, out_dir: str, rendering: str = "gray") -> str:
  """Writes colorizer.keras, embedder.json and rendering.json into out_dir; returns the model's
  path.

  Keras writes the .keras zip to a local temporary file first and we copy it, so a gs://
  out_dir works even where Keras's own remote-path support does not reach.
  """
  import tempfile

  import tensorflow as tf
  path = join(out_dir, MODEL_FILENAME)
  with tempfile.TemporaryDirectory(prefix="koala-model-") as tmp:
    local = os.path.join(tmp, MODEL_FILENAME)
    model.save(local)
    tf.io.gfile.makedirs(out_dir)
    tf.io.gfile.copy(local, path, overwrite=True)
  write_json(join(out_dir, EMBEDDER_FILENAME), info)
  write_json(join(out_dir, RENDERING_FILENAME), rendering_info(rendering))
  return path


def rendering_info(rendering: str) -> dict:
  """What rendering.json holds: the rendering the model learned from, and the composition of
  its pages that follows from it."""
  from koala import colour
  return {"rendering": rendering, "composition": colour.composition_for(rendering)}


def load_rendering(job_dir: str) -> dict:
  """rendering.json of a finished job; a job from before it existed was trained on gray."""
  import tensorflow as tf
  path = join(model_dir(job_dir), RENDERING_FILENAME)
  if not tf.io.gfile.exists(path):
    return rendering_info("gray")
  return json.loads(read_text(path))


def load_model_file(path: str):
  """A .keras file (local or gs://) -> the Keras model, compiled as it was saved."""
  import tempfile

  import keras
  import tensorflow as tf
  if "://" not in path:
    return keras.models.load_model(path)
  with tempfile.TemporaryDirectory(prefix="koala-model-") as tmp:
    local = os.path.join(tmp, os.path.basename(path))
    tf.io.gfile.copy(path, local, overwrite=True)
    return keras.models.load_model(local)


def load_trained(job_dir: str):
  """-> (keras_model, embedder_info_dict) from a finished job's model_dir(job_dir)."""
  out_dir = model_dir(job_dir)
  path = join(out_dir, MODEL_FILENAME)
  info_path = join(out_dir, EMBEDDER_FILENAME)
  import tensorflow as tf
  for p in (path, info_path):
    if not tf.io.gfile.exists(p):
      raise FileNotFoundError(f"{p} not found: has `python -m trainer.task --job_dir={job_dir}` "
                              "finished (and is AIP_MODEL_DIR the same as during training)?")
  return load_model_file(path), json.loads(read_text(info_path))
