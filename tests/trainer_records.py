"""Test helper: writes small record sets with the pipeline's schema, without running the pipeline.

The task is learnable from gray alone, as the trainer tests need: every image is flat shapes on
a background, and each shape's colour follows from its gray level (L) through a fixed palette.
The "embeddings" are made on the spot (seeded noise), since the real Inception-ResNet-v2 embeds
only ~4 images/s on a CPU; the schema, the quantisation and the manifest are the real ones.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from koala import schema

EMBEDDER_ID = "inception_resnet_v2:random-seed7:feedfacecafebeef"
# L level -> (a, b) in LAB units: the rule the model has to learn.
PALETTE = {25.0: (20.0, -50.0), 50.0: (55.0, 40.0), 70.0: (-50.0, 45.0), 90.0: (-5.0, 75.0)}


# The run's one trained gray job (tests/conftest.py's gray_training: the serving tests export it,
# tests/test_trainer_task.py checks its training): its records (the task with real embeddings,
# tests/serving_support.py's write_task_records) and its trainer.task configuration.
GRAY_JOB_COUNTS = {"train": 16, "val": 4, "test": 4}
GRAY_JOB_TRAINING = dict(learning_rate=3e-3, epochs=3, batch_size=8, steps_per_epoch=100, seed=1,
                         verbose=0, width=0.25, image_size=56)


def make_image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """-> (L (224, 224, 1), ab (224, 224, 2)) in LAB units: rectangles and discs on a background."""
  size = schema.IMAGE_SIZE
  levels = list(PALETTE)
  label = np.full((size, size), rng.integers(len(levels)), np.int64)
  yy, xx = np.mgrid[0:size, 0:size]
  for _ in range(rng.integers(2, 6)):
    cy, cx = rng.integers(0, size, 2)
    r = rng.integers(16, 64)
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) if rng.random() < 0.5 else (
        (abs(yy - cy) < r) & (abs(xx - cx) < r * 0.7))
    label[mask] = rng.integers(len(levels))
  l = np.asarray(levels, np.float32)[label][..., None]
  ab = np.asarray([PALETTE[v] for v in levels], np.float32)[label]
  return l, ab


def serialize(l, ab, embedding, name: str, embedder_id: str = EMBEDDER_ID,
              schema_version: int = schema.SCHEMA_VERSION) -> bytes:
  data = schema.encode_example(
      l_u8=schema.quantize_l(l), ab_u8=schema.quantize_ab(ab), embedding=embedding,
      source_path=name, content_hash=hashlib.sha256(name.encode()).hexdigest()[:32],
      original_size=(schema.IMAGE_SIZE, schema.IMAGE_SIZE), embedder_id=embedder_id)
  if schema_version != schema.SCHEMA_VERSION:   # a record from another version of the pipeline
    example = tf.train.Example.FromString(data)
    example.features.feature[schema.VERSION].int64_list.value[0] = schema_version
    data = example.SerializeToString()
  return data


def write_shard(path: str, records: list[bytes], gzip: bool = False) -> str:
  tf.io.gfile.makedirs(os.path.dirname(path))
  options = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else "")
  with tf.io.TFRecordWriter(path, options) as w:
    for r in records:
      w.write(r)
  return path


def write_records(out_dir: str, counts=None, shards: int = 2, seed: int = 0,
                  embedder_id: str = EMBEDDER_ID, manifest: bool = True,
                  gzip: bool = False, make=None, name: str = "synthetic") -> dict:
  """Writes <out>/{split}/{split}-0000i-of-0000n.tfrecord and manifest.json; returns the
  manifest. make(rng) -> (L, ab) draws each image (default make_image)."""
  make = make or make_image
  counts = counts or {"train": 64, "val": 16, "test": 16}
  rng = np.random.default_rng(seed)
  for split, n in counts.items():
    records = []
    for i in range(n):
      l, ab = make(rng)
      emb = rng.normal(0, 0.5, schema.EMBEDDING_DIM).astype(np.float32)
      records.append(serialize(l, ab, emb, f"{name}/{split}/{i}.png", embedder_id))
    for s in range(shards):
      suffix = ".tfrecord" + (".gz" if gzip else "")
      write_shard(f"{out_dir}/{split}/{split}-{s:05d}-of-{shards:05d}{suffix}",
                  records[s::shards], gzip)
  doc = {
      "schema_version": schema.SCHEMA_VERSION,
      "counts": {"written": dict(counts)},
      "embedder": {"name": "inception_resnet_v2", "weights": "random", "identity": embedder_id,
                   "random_weights": True},
      "options": {"embedder_seed": 7},
  }
  if manifest:
    with open(os.path.join(out_dir, schema.MANIFEST), "w") as f:
      json.dump(doc, f)
  return doc


# The hint task: colour cannot be told from lightness. Every region has the same L, outlined in
# ink, and takes one of these colours at random, so only a hint can say which.
HINT_TASK_COLOURS = ((60.0, 50.0), (-50.0, 40.0), (10.0, -60.0), (-20.0, -30.0))
HINT_TASK_L, HINT_TASK_INK = 70.0, 10.0


def make_hint_task_image(rng: np.random.Generator, size: int = schema.IMAGE_SIZE):
  """-> (L (size, size, 1), ab (size, size, 2)): a grid of 2 x 2 to 3 x 3 flat cells of one
  lightness, separated by ink lines, each cell a random colour of HINT_TASK_COLOURS."""
  cells = int(rng.integers(2, 4))
  edges = np.linspace(0, size, cells + 1).astype(int)
  l = np.full((size, size, 1), HINT_TASK_L, np.float32)
  ab = np.zeros((size, size, 2), np.float32)
  line = max(1, size // 56)
  for i in range(cells):
    for j in range(cells):
      colour = HINT_TASK_COLOURS[rng.integers(len(HINT_TASK_COLOURS))]
      ab[edges[i]:edges[i + 1], edges[j]:edges[j + 1]] = colour
  for e in edges[1:-1]:
    l[e - line:e + line, :] = HINT_TASK_INK
    l[:, e - line:e + line] = HINT_TASK_INK
    ab[e - line:e + line, :] = 0.0
    ab[:, e - line:e + line] = 0.0
  return l, ab


def write_hint_task_records(out_dir: str, counts=None, seed: int = 0) -> dict:
  """Records of the hint task (make_hint_task_image), one shard per split, with a manifest."""
  return write_records(out_dir, counts, shards=1, seed=seed, make=make_hint_task_image,
                       name="hint_task")


HINT_ART_L = (55.0, 70.0, 85.0)   # cell lightness: the manga renderer makes paper or tone of it


def hint_task_art(rng: np.random.Generator, height: int = 240, width: int = 240) -> np.ndarray:
  """The hint task as colour art for koala.manga (uint8 RGB): 2 x 2 to 3 x 3 flat cells of a
  random lightness of HINT_ART_L and a random colour of HINT_TASK_COLOURS, separated by 6 px
  ink lines. Rendered as manga, a cell is white paper or screentone whatever its colour, so
  only a hint can say which colour it has."""
  from koala import colour
  cells = int(rng.integers(2, 4))
  ys = np.linspace(0, height, cells + 1).astype(int)
  xs = np.linspace(0, width, cells + 1).astype(int)
  lab = np.zeros((height, width, 3), np.float32)
  for i in range(cells):
    for j in range(cells):
      a, b = HINT_TASK_COLOURS[rng.integers(len(HINT_TASK_COLOURS))]
      lab[ys[i]:ys[i + 1], xs[j]:xs[j + 1]] = (rng.choice(HINT_ART_L), a, b)
  for e in ys[1:-1]:
    lab[e - 3:e + 3, :] = (5.0, 0.0, 0.0)
  for e in xs[1:-1]:
    lab[:, e - 3:e + 3] = (5.0, 0.0, 0.0)
  return colour.to_uint8(colour.lab_to_rgb(lab))
