"""The TFRecord schema: feature names, dtypes, shapes, the schema version, encode/decode helpers.

The pipeline writes records with `encode_example`; the trainer and every tool read them with
`parse_batch` (TensorFlow, after batching) or `decode_example` (NumPy). Nothing else in the
project spells a feature name.

Encoding of L and ab: raw uint8 bytes, L as round(L * 255 / 100) and ab as round(ab + 128).
  * Size: 224*224*3 bytes = 147 KiB per image, a quarter of float32 and small enough that the
    1536-d embedding (6 KiB) does not matter.
  * Read speed: `tf.io.decode_raw` on a batch of strings is a memcpy, where PNG would cost a
    decode per image on the trainer's CPUs (which must feed a GPU at thousands of images/s).
  * Precision: the quantisation steps are 0.39 L units and 1 ab unit (error <= 0.5), far below
    what an eye or the loss can tell apart (MSE-trained chroma errors are tens of units).
  * Compression of whole files (GZIP) remains an option of the pipeline for storage cost.

What the model sees vs what it learns: `l` and `ab` are the colour image's own LAB (the target).
A record made with `pipeline.run --render=manga` adds `input`, the lightness of the manga
rendering of that image (koala.manga: paper, ink lines, screentone) at 224, quantised as `l` is,
and names the rendering in `rendering` (its seed in `rendering_seed`); the embedding was computed
from the same rendering. A record without these fields (every record made before them, and every
`--render=gray` record) is a gray record: the model's input is `l` itself.
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

SCHEMA_VERSION = 1
IMAGE_SIZE = 224          # L and ab are IMAGE_SIZE x IMAGE_SIZE.
EMBEDDER_SIZE = 299       # the embedder's input side.
EMBEDDING_DIM = 1536      # Inception-ResNet-v2's pooled features.
SPLITS = ("train", "val", "test")

# Feature names.
L = "l"                          # the colour image's own L: the target's lightness
AB = "ab"
EMBEDDING = "embedding"
SOURCE_PATH = "source_path"
CONTENT_HASH = "content_hash"
ORIGINAL_HEIGHT = "original_height"
ORIGINAL_WIDTH = "original_width"
VERSION = "schema_version"
EMBEDDER_ID = "embedder_id"
INPUT_L = "input"                # the model's input L, when it is not `l` (manga renderings)
RENDERING = "rendering"          # what the model sees: GRAY, or koala.manga.RENDERING_NAME
RENDERING_SEED = "rendering_seed"

GRAY = "gray"                    # the original project's rendering: the colour image's own L, neutral

L_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)
AB_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 2)
EMBEDDING_SHAPE = (EMBEDDING_DIM,)


def quantize_l(l: np.ndarray) -> np.ndarray:
  return np.clip(np.rint(np.asarray(l) * (255.0 / 100.0)), 0, 255).astype(np.uint8)


def dequantize_l(l_u8: np.ndarray) -> np.ndarray:
  return np.asarray(l_u8, np.float32) * (100.0 / 255.0)


def quantize_ab(ab: np.ndarray) -> np.ndarray:
  return np.clip(np.rint(np.asarray(ab) + 128.0), 0, 255).astype(np.uint8)


def dequantize_ab(ab_u8: np.ndarray) -> np.ndarray:
  return np.asarray(ab_u8, np.float32) - 128.0


@dataclasses.dataclass(frozen=True)
class Record:
  """One decoded record: L in [0, 100] and ab in LAB units, at IMAGE_SIZE, plus provenance."""
  l: np.ndarray            # (224, 224, 1) float32
  ab: np.ndarray           # (224, 224, 2) float32
  embedding: np.ndarray    # (1536,) float32
  source_path: str
  content_hash: str
  original_size: tuple[int, int]   # (height, width)
  embedder_id: str
  schema_version: int = SCHEMA_VERSION
  input_l: np.ndarray | None = None   # (224, 224, 1) the model's input L; None: `l` (gray)
  rendering: str = GRAY
  rendering_seed: int = 0

  @property
  def model_input(self) -> np.ndarray:
    """The L the model sees: the rendering's, or for gray records the image's own."""
    return self.l if self.input_l is None else self.input_l


def _bytes(value: bytes):
  import tensorflow as tf
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int):
  import tensorflow as tf
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def encode_example(*, l_u8: np.ndarray, ab_u8: np.ndarray, embedding: np.ndarray,
                   source_path: str, content_hash: str, original_size: tuple[int, int],
                   embedder_id: str, input_u8: np.ndarray | None = None,
                   rendering: str = GRAY, rendering_seed: int = 0) -> bytes:
  """Serialises one image's tensors (already quantised) into a tf.train.Example.

  input_u8: the quantised L of a rendering (required unless rendering is GRAY, refused with it).
  """
  import tensorflow as tf
  if l_u8.shape != L_SHAPE or l_u8.dtype != np.uint8:
    raise ValueError(f"L must be uint8 {L_SHAPE}, got {l_u8.dtype} {l_u8.shape}")
  if (input_u8 is None) != (rendering == GRAY):
    raise ValueError(f"a {rendering!r} record needs an input L exactly when it is not {GRAY!r}")
  if input_u8 is not None and (input_u8.shape != L_SHAPE or input_u8.dtype != np.uint8):
    raise ValueError(f"input must be uint8 {L_SHAPE}, got {input_u8.dtype} {input_u8.shape}")
  if ab_u8.shape != AB_SHAPE or ab_u8.dtype != np.uint8:
    raise ValueError(f"ab must be uint8 {AB_SHAPE}, got {ab_u8.dtype} {ab_u8.shape}")
  embedding = np.asarray(embedding, dtype="<f4")
  if embedding.shape != EMBEDDING_SHAPE:
    raise ValueError(f"embedding must be {EMBEDDING_SHAPE}, got {embedding.shape}")
  features = {
      L: _bytes(l_u8.tobytes()),
      AB: _bytes(ab_u8.tobytes()),
      EMBEDDING: _bytes(embedding.tobytes()),
      SOURCE_PATH: _bytes(source_path.encode("utf-8")),
      CONTENT_HASH: _bytes(content_hash.encode("ascii")),
      ORIGINAL_HEIGHT: _int(original_size[0]),
      ORIGINAL_WIDTH: _int(original_size[1]),
      VERSION: _int(SCHEMA_VERSION),
      EMBEDDER_ID: _bytes(embedder_id.encode("utf-8")),
      RENDERING: _bytes(rendering.encode("utf-8")),
      RENDERING_SEED: _int(rendering_seed),
  }
  if input_u8 is not None:
    features[INPUT_L] = _bytes(input_u8.tobytes())
  return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def feature_spec() -> dict:
  """The spec for `tf.io.parse_example`; every feature is a scalar string or int64. The
  rendering's fields default to a gray record's (records made before they existed)."""
  import tensorflow as tf
  spec = {name: tf.io.FixedLenFeature([], tf.string)
          for name in (L, AB, EMBEDDING, SOURCE_PATH, CONTENT_HASH, EMBEDDER_ID)}
  spec.update({name: tf.io.FixedLenFeature([], tf.int64)
               for name in (ORIGINAL_HEIGHT, ORIGINAL_WIDTH, VERSION)})
  spec[INPUT_L] = tf.io.FixedLenFeature([], tf.string, default_value="")
  spec[RENDERING] = tf.io.FixedLenFeature([], tf.string, default_value=GRAY)
  spec[RENDERING_SEED] = tf.io.FixedLenFeature([], tf.int64, default_value=0)
  return spec


def parse_batch(serialized):
  """A batch of serialized examples (tf.string [N]) -> dict of dense tensors.

  L, the model's input L (`INPUT_L`: the rendering's, or `l` again for gray records) and ab come
  back in LAB units (float32); parse after batching, so that `decode_raw` runs once per batch
  rather than once per record. A batch is all gray or all rendered (trainer.input.check_records
  refuses mixed records).
  """
  import tensorflow as tf
  parsed = tf.io.parse_example(serialized, feature_spec())
  l_u8 = tf.reshape(tf.io.decode_raw(parsed[L], tf.uint8), (-1,) + L_SHAPE)
  ab_u8 = tf.reshape(tf.io.decode_raw(parsed[AB], tf.uint8), (-1,) + AB_SHAPE)
  embedding = tf.reshape(tf.io.decode_raw(parsed[EMBEDDING], tf.float32), (-1,) + EMBEDDING_SHAPE)
  rendered = tf.reduce_any(tf.strings.length(parsed[INPUT_L]) > 0)
  input_u8 = tf.cond(
      rendered, lambda: tf.reshape(tf.io.decode_raw(parsed[INPUT_L], tf.uint8), (-1,) + L_SHAPE),
      lambda: l_u8)
  parsed[L] = tf.cast(l_u8, tf.float32) * (100.0 / 255.0)
  parsed[INPUT_L] = tf.cast(input_u8, tf.float32) * (100.0 / 255.0)
  parsed[AB] = tf.cast(ab_u8, tf.float32) - 128.0
  parsed[EMBEDDING] = embedding
  return parsed


def decode_example(serialized: bytes) -> Record:
  """One serialized example -> `Record` (NumPy), for tools and tests."""
  import tensorflow as tf
  f = tf.train.Example.FromString(serialized).features.feature
  b = lambda name: f[name].bytes_list.value[0]
  i = lambda name: int(f[name].int64_list.value[0])
  l_u8 = np.frombuffer(b(L), np.uint8).reshape(L_SHAPE)
  ab_u8 = np.frombuffer(b(AB), np.uint8).reshape(AB_SHAPE)
  input_l = (dequantize_l(np.frombuffer(b(INPUT_L), np.uint8).reshape(L_SHAPE))
             if INPUT_L in f else None)
  return Record(
      l=dequantize_l(l_u8), ab=dequantize_ab(ab_u8),
      embedding=np.frombuffer(b(EMBEDDING), "<f4").copy(),
      source_path=b(SOURCE_PATH).decode("utf-8"),
      content_hash=b(CONTENT_HASH).decode("ascii"),
      original_size=(i(ORIGINAL_HEIGHT), i(ORIGINAL_WIDTH)),
      embedder_id=b(EMBEDDER_ID).decode("utf-8"),
      schema_version=i(VERSION),
      input_l=input_l,
      rendering=b(RENDERING).decode("utf-8") if RENDERING in f else GRAY,
      rendering_seed=i(RENDERING_SEED) if RENDERING_SEED in f else 0)


# The split is drawn from SHA-256(salt + ":" + content hash), not from the content hash itself:
# data sets are often split by a prefix of the same SHA-256 (../shared/data's train.txt holds the
# files whose hash starts with 4-f), and an unsalted draw would then put all of such a train list
# in one of our splits. A salt of our own makes the draw independent of any split made without
# it, and stays deterministic. Changing it reshuffles every split; manifest.json records it.
DEFAULT_SPLIT_SALT = "koala-split-v1"


def split_for_hash(content_hash: str, val_fraction: float, test_fraction: float,
                   salt: str = DEFAULT_SPLIT_SALT) -> str:
  """The split of an image, from its content hash and the salt: the same on every rerun and
  every runner."""
  draw = hashlib.sha256(f"{salt}:{content_hash}".encode("utf-8")).hexdigest()
  u = int(draw[:12], 16) / float(16 ** 12)
  if u < val_fraction:
    return "val"
  if u < val_fraction + test_fraction:
    return "test"
  return "train"


def shard_pattern(records_dir: str, split: str) -> str:
  """The glob of one split's shards under a records directory (as the pipeline writes them)."""
  return f"{records_dir.rstrip('/')}/{split}/{split}-*.tfrecord*"


MANIFEST = "manifest.json"
REJECTED = "rejected.jsonl"
SKIPPED_GRAY = "skipped_gray.jsonl"
DUPLICATES = "duplicates.jsonl"
