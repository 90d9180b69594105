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
L = "l"
AB = "ab"
EMBEDDING = "embedding"
SOURCE_PATH = "source_path"
CONTENT_HASH = "content_hash"
ORIGINAL_HEIGHT = "original_height"
ORIGINAL_WIDTH = "original_width"
VERSION = "schema_version"
EMBEDDER_ID = "embedder_id"

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


def _bytes(value: bytes):
  import tensorflow as tf
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int):
  import tensorflow as tf
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def encode_example(*, l_u8: np.ndarray, ab_u8: np.ndarray, embedding: np.ndarray,
                   source_path: str, content_hash: str, original_size: tuple[int, int],
                   embedder_id: str) -> bytes:
  """Serialises one image's tensors (already quantised) into a tf.train.Example."""
  import tensorflow as tf
  if l_u8.shape != L_SHAPE or l_u8.dtype != np.uint8:
    raise ValueError(f"L must be uint8 {L_SHAPE}, got {l_u8.dtype} {l_u8.shape}")
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
  }
  return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def feature_spec() -> dict:
  """The spec for `tf.io.parse_example`; every feature is a scalar string or int64."""
  import tensorflow as tf
  spec = {name: tf.io.FixedLenFeature([], tf.string)
          for name in (L, AB, EMBEDDING, SOURCE_PATH, CONTENT_HASH, EMBEDDER_ID)}
  spec.update({name: tf.io.FixedLenFeature([], tf.int64)
               for name in (ORIGINAL_HEIGHT, ORIGINAL_WIDTH, VERSION)})
  return spec


def parse_batch(serialized):
  """A batch of serialized examples (tf.string [N]) -> dict of dense tensors.

  L and ab come back in LAB units (float32); parse after batching, so that `decode_raw` runs
  once per batch rather than once per record.
  """
  import tensorflow as tf
  parsed = tf.io.parse_example(serialized, feature_spec())
  l_u8 = tf.reshape(tf.io.decode_raw(parsed[L], tf.uint8), (-1,) + L_SHAPE)
  ab_u8 = tf.reshape(tf.io.decode_raw(parsed[AB], tf.uint8), (-1,) + AB_SHAPE)
  embedding = tf.reshape(tf.io.decode_raw(parsed[EMBEDDING], tf.float32), (-1,) + EMBEDDING_SHAPE)
  parsed[L] = tf.cast(l_u8, tf.float32) * (100.0 / 255.0)
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
  return Record(
      l=dequantize_l(l_u8), ab=dequantize_ab(ab_u8),
      embedding=np.frombuffer(b(EMBEDDING), "<f4").copy(),
      source_path=b(SOURCE_PATH).decode("utf-8"),
      content_hash=b(CONTENT_HASH).decode("ascii"),
      original_size=(i(ORIGINAL_HEIGHT), i(ORIGINAL_WIDTH)),
      embedder_id=b(EMBEDDER_ID).decode("utf-8"),
      schema_version=i(VERSION))


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
