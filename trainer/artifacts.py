"""Where a training job puts its outputs, and how the export reads the trained model back.

This is the contract between the trainer and the serving export (trainer/export/), kept in
one small module so that neither side spells a path or a file name on its own:

  <model_dir>/colorizer.keras   the final trained Keras model (compiled, with optimizer state)
  <model_dir>/embedder.json     the records' embedder (koala.embedder.EmbedderInfo: name,
                                weights, identity, random_weights, embedder_seed), so the
                                export can rebuild exactly the embedder that made the records
  <model_dir>/rendering.json    what the model was trained to see ("gray", or a manga
                                rendering's name) and so how its pages are composed
                                (koala.colour.composition_for); absent in older jobs: gray

The two JSON files together are the trained model's description, `TrainedModelInfo`, written
and read only by its `write` and `read`.

model_dir is $AIP_MODEL_DIR when Vertex AI sets it, else <job_dir>/model. Checkpoints and
TensorBoard logs follow Vertex's AIP_CHECKPOINT_DIR and AIP_TENSORBOARD_LOG_DIR the same way.
Every path may be local or gs://: files go through tf.io.gfile, which speaks both.
"""
from __future__ import annotations

import dataclasses
import json
import os

from koala import schema
from koala.embedder import EmbedderInfo
from koala.records_manifest import RecordsManifest

MODEL_FILENAME = "colorizer.keras"
EMBEDDER_FILENAME = "embedder.json"
RENDERING_FILENAME = "rendering.json"
HISTORY_FILENAME = "history.json"
CURVES_FILENAME = "training_curves.png"

AIP_MODEL_DIR = "AIP_MODEL_DIR"
AIP_CHECKPOINT_DIR = "AIP_CHECKPOINT_DIR"
AIP_TENSORBOARD_LOG_DIR = "AIP_TENSORBOARD_LOG_DIR"

# What the export needs of the records' embedder to rebuild it.
REQUIRED_EMBEDDER_FIELDS = ("name", "weights", "identity", "random_weights")


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


def records_embedder(manifest: RecordsManifest) -> EmbedderInfo:
  """The embedder that made the records, from their manifest, refused when the export could not
  rebuild it from what the manifest says."""
  embedder = manifest.embedder or EmbedderInfo()
  missing = [k for k in REQUIRED_EMBEDDER_FIELDS if getattr(embedder, k) is None]
  if missing:
    raise ValueError(f"the records' manifest has no embedder {missing}; was it written by "
                     "pipeline.run?")
  return embedder


@dataclasses.dataclass(frozen=True)
class TrainedModelInfo:
  """The trained model's description: the embedder its records were made with, the rendering
  it learned from, and the composition of its pages that follows from that rendering."""
  embedder: EmbedderInfo
  rendering: str = schema.GRAY
  composition: str | None = None    # None: koala.colour.composition_for(rendering)

  def __post_init__(self):
    if self.composition is None:
      from koala import colour   # OpenCV, which the readers of paths alone need not load
      object.__setattr__(self, "composition", colour.composition_for(self.rendering))

  def rendering_dict(self) -> dict:
    """rendering.json's content (the export's description carries it too)."""
    return {"rendering": self.rendering, "composition": self.composition}

  def write(self, out_dir: str) -> None:
    write_json(join(out_dir, EMBEDDER_FILENAME), self.embedder.to_dict())
    write_json(join(out_dir, RENDERING_FILENAME), self.rendering_dict())

  @classmethod
  def read(cls, out_dir: str) -> "TrainedModelInfo":
    """FileNotFoundError without embedder.json; a job from before rendering.json was gray."""
    import tensorflow as tf
    embedder_path = join(out_dir, EMBEDDER_FILENAME)
    if not tf.io.gfile.exists(embedder_path):
      raise FileNotFoundError(embedder_path)
    embedder = EmbedderInfo.from_dict(json.loads(read_text(embedder_path)))
    rendering_path = join(out_dir, RENDERING_FILENAME)
    if not tf.io.gfile.exists(rendering_path):
      return cls(embedder)
    rendering = json.loads(read_text(rendering_path))
    return cls(embedder, rendering.get("rendering", schema.GRAY), rendering.get("composition"))


def save_trained(model, info: TrainedModelInfo, out_dir: str) -> str:
  """Writes colorizer.keras and the model's description into out_dir; returns the model's path.

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
  info.write(out_dir)
  return path


def _not_finished(path: str, job_dir: str) -> FileNotFoundError:
  return FileNotFoundError(f"{path} not found: has `python -m trainer.task --job_dir={job_dir}` "
                           "finished (and is AIP_MODEL_DIR the same as during training)?")


def read_trained_info(job_dir: str) -> TrainedModelInfo:
  """The description of a finished job's model (in model_dir(job_dir))."""
  try:
    return TrainedModelInfo.read(model_dir(job_dir))
  except FileNotFoundError as e:
    raise _not_finished(str(e), job_dir) from None


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


def load_trained(job_dir: str) -> tuple[object, TrainedModelInfo]:
  """-> (keras_model, TrainedModelInfo) from a finished job's model_dir(job_dir)."""
  import tensorflow as tf
  path = join(model_dir(job_dir), MODEL_FILENAME)
  if not tf.io.gfile.exists(path):
    raise _not_finished(path, job_dir)
  info = read_trained_info(job_dir)
  return load_model_file(path), info
