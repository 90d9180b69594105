"""The frozen global-semantics embedder: Inception-ResNet-v2, pooled to 1536-d.

One loader for the pipeline (inside Beam's RunInference) and for the serving export, so both
see the same network with the same weights. Its input is always the neutral-gray rendering of
an image's L channel at 299 x 299, repeated to three channels (see `koala.colour`).

Weights:
  * "imagenet" (default): Keras downloads them for users who are online; offline this fails at
    once with a message that names the alternatives.
  * a local or gs:// path to a weights file (.h5 / .weights.h5 / .keras).
  * "random": explicit, seeded (so reruns give identical records), logged loudly and recorded in
    the manifest. Good for tests and the offline demo, useless for real colorization.
A TF-Hub or SavedModel feature-vector module can replace the Keras model: `hub:<handle or path>`.

Every embedder carries an `identity` string (name, weights source, fingerprint of the weights)
that the pipeline writes into every record and the manifest, and that the trainer checks.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
from typing import Callable

import numpy as np

from koala import schema

KERAS_NAME = "inception_resnet_v2"
HUB_PREFIX = "hub:"
RANDOM = "random"
IMAGENET = "imagenet"
DEFAULT_SEED = 0

_LOG = logging.getLogger(__name__)

RANDOM_WARNING = (
    "THE EMBEDDER HAS RANDOM WEIGHTS. Records, models and colorizations made with it are fine "
    "for tests and demos but worthless for real colorization: pass --embedder_weights=imagenet "
    "(online) or a path to the ImageNet weights file.")


class EmbedderError(RuntimeError):
  """The embedder could not be loaded; the message says what to do instead."""


def has_random_weights(embedder: str, weights: str) -> bool:
  """Whether these flags build a Keras embedder with random weights (a hub module brings its
  own weights, whatever --embedder_weights says)."""
  return weights == RANDOM and not embedder.startswith(HUB_PREFIX)


@dataclasses.dataclass(frozen=True)
class EmbedderInfo:
  """The description of the embedder that made a set of records, carried unchanged from the
  records' manifest ("embedder") to the trained model (embedder.json) to the export
  (koala_export.json "embedder"), so the export can rebuild exactly that embedder and every
  reader can say when its weights were random.

  identity is the fingerprint the records carry (a list when a run mixed several, which the
  trainer refuses; None when a run wrote no records). Fields a file lacks read as None (older
  files, or a records folder with no manifest); keys this version does not know are ignored.
  """
  name: str | None = None
  weights: str | None = None
  identity: str | list[str] | None = None
  random_weights: bool | None = None
  embedder_seed: int | None = None
  warning: str | None = None     # RANDOM_WARNING when random_weights, else absent

  @classmethod
  def for_flags(cls, embedder: str, weights: str, seed: int,
                identity: str | list[str] | None) -> "EmbedderInfo":
    """The description of an embedder loaded from the pipeline's flags."""
    random_weights = has_random_weights(embedder, weights)
    return cls(name=embedder, weights=weights, identity=identity,
               random_weights=random_weights, embedder_seed=seed,
               warning=RANDOM_WARNING if random_weights else None)

  def to_dict(self) -> dict:
    data = dataclasses.asdict(self)
    if self.warning is None:
      del data["warning"]
    return data

  @classmethod
  def from_dict(cls, data: dict) -> "EmbedderInfo":
    if not isinstance(data, dict):
      raise ValueError(f"an embedder's description is a JSON object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


@dataclasses.dataclass
class Embedder:
  """A loaded embedder: `embed` maps (N, 299, 299, 3) uint8 gray images to (N, 1536) float32."""
  identity: str
  embed_unit: Callable[[np.ndarray], np.ndarray]   # takes float32 in [0, 1]
  keras_model: object | None = None                # the Keras model, when there is one

  @property
  def is_random(self) -> bool:
    return f":{RANDOM}" in self.identity

  def embed(self, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype == np.uint8:
      images = images.astype(np.float32) / 255.0
    out = np.asarray(self.embed_unit(images.astype(np.float32, copy=False)), np.float32)
    if out.ndim != 2 or out.shape[1] != schema.EMBEDDING_DIM:
      raise EmbedderError(
          f"embedder {self.identity} gave shape {out.shape}, expected (N, {schema.EMBEDDING_DIM})")
    return out


def weights_fingerprint(arrays) -> str:
  h = hashlib.sha256()
  for a in arrays:
    h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
  return h.hexdigest()[:16]


def build_keras_model(weights: str | None = None, seed: int = DEFAULT_SEED):
  """Inception-ResNet-v2, no top, global average pool; input 299x299x3 in [-1, 1]."""
  import keras
  if weights is None:
    keras.utils.set_random_seed(seed)
  return keras.applications.InceptionResNetV2(
      include_top=False, weights=weights, pooling="avg",
      input_shape=(schema.EMBEDDER_SIZE, schema.EMBEDDER_SIZE, 3))


def _local_copy(path: str) -> str:
  """Remote (gs://...) weights are copied to a local temp file; Keras reads local files only."""
  import tensorflow as tf
  if "://" not in path:
    if not os.path.exists(path):
      raise EmbedderError(f"embedder weights file not found: {path}")
    return path
  if not tf.io.gfile.exists(path):
    raise EmbedderError(f"embedder weights file not found: {path}")
  local = os.path.join(tempfile.mkdtemp(prefix="koala-weights-"), os.path.basename(path))
  tf.io.gfile.copy(path, local, overwrite=True)
  return local


def _keras_embedder(weights: str, seed: int) -> Embedder:
  if weights == RANDOM:
    model = build_keras_model(None, seed)
    source = f"{RANDOM}-seed{seed}"
    _LOG.warning(RANDOM_WARNING)
  elif weights == IMAGENET:
    source = IMAGENET
    try:
      model = build_keras_model(IMAGENET)
    except Exception as e:
      raise EmbedderError(
          f"could not load the ImageNet weights of Inception-ResNet-v2 ({e}). Keras downloads "
          "them on first use, so this needs the internet once (they are cached in "
          "~/.keras/models). Alternatives: --embedder_weights=/path/or/gs://bucket/"
          "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5, "
          "--embedder=hub:<handle or SavedModel path>, or --embedder_weights=random "
          "(tests and offline demos only).") from None
  else:
    model = build_keras_model(None, seed)
    local = _local_copy(weights)
    try:
      model.load_weights(local)
    except Exception as e:
      raise EmbedderError(f"could not load embedder weights from {weights}: {e}") from None
    source = f"file-{os.path.basename(weights)}"
  identity = f"{KERAS_NAME}:{source}:{weights_fingerprint(model.get_weights())}"

  import tensorflow as tf
  infer = tf.function(lambda x: model(x * 2.0 - 1.0, training=False), jit_compile=False,
                      reduce_retracing=True)
  return Embedder(identity=identity, embed_unit=lambda x: infer(tf.constant(x)).numpy(),
                  keras_model=model)


def _hub_embedder(handle: str) -> Embedder:
  """A TF-Hub image feature-vector module: called on images in [0, 1], as Hub's convention is."""
  import tensorflow as tf
  import tensorflow_hub as hub
  try:
    module = hub.load(handle)
  except Exception as e:
    raise EmbedderError(f"could not load the hub embedder {handle!r}: {e}") from None
  fingerprint = weights_fingerprint(v.numpy() for v in getattr(module, "variables", []))
  identity = f"hub:{handle}:{fingerprint}"
  fn = module.signatures["serving_default"] if not callable(module) else module

  def embed_unit(x):
    out = fn(tf.constant(x))
    if isinstance(out, dict):
      out = next(iter(out.values()))
    return out.numpy()
  return Embedder(identity=identity, embed_unit=embed_unit)


def load_embedder(embedder: str = KERAS_NAME, weights: str = IMAGENET,
                  seed: int = DEFAULT_SEED) -> Embedder:
  """Loads the embedder named by the pipeline's --embedder / --embedder_weights flags."""
  if embedder.startswith(HUB_PREFIX):
    return _hub_embedder(embedder[len(HUB_PREFIX):])
  if embedder != KERAS_NAME:
    raise EmbedderError(f"unknown embedder {embedder!r}; use {KERAS_NAME!r} or 'hub:<handle>'")
  return _keras_embedder(weights, seed)
