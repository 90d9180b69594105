"""The tf.data reader that feeds the colorizer from the pipeline's sharded TFRecords.

One dataset per split, built for throughput (the target is >= 2,000 examples/s per CPU core, so
that a handful of cores can feed one GPU):
  * shards are read in parallel (interleave) and, for training, in a shuffled order;
  * the optional cache holds the serialized records (in memory or in a file), before shuffling,
    so that every epoch still sees a fresh order;
  * the shuffle buffer holds serialized records (~150 KiB each), not decoded floats;
  * batching comes before parsing: `koala.schema.parse_batch` decodes a whole batch at once;
  * prefetch overlaps the input with the training step.

Elements are (inputs, target): inputs = {L_INPUT: the input L in [0, 100], EMBEDDING_INPUT:
1536-d}, the model's own input convention (trainer.model), and target = ab / 128 in [-1, 1], the
original project's loss space. The input L is what the model sees: the image's own L for gray
records, the manga rendering's L for manga records (koala.schema.INPUT_L). It is not the records'
`l` (koala.schema.L), which is always the colour image's own L, the target's lightness, here
`target_l`; the target is the colour image's ab either way. With an `ExampleGuidance` (the guided
model, trainer.task --hints), inputs also hold HINTS_INPUT and PALETTE_INPUT, drawn on the fly
from each record's own true L and ab (koala.guidance), so the same records serve both models.

Before anything is read, `check_records` opens the first record of every shard of every split
and refuses (RecordsMismatchError, naming the files) records whose schema version or embedder
identity differs from the rest or from manifest.json: a model trained on embeddings from one
embedder is useless with another, and the mix would otherwise train silently. Each batch is
checked again in the graph, which costs a string comparison per batch.
"""
from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import tensorflow as tf

from koala import colour, guidance, records_manifest, schema
from trainer.model import EMBEDDING_INPUT, HINTS_INPUT, L_INPUT, PALETTE_INPUT

DEFAULT_SHUFFLE_BUFFER = 1024
# schema.L is the colour image's own L (the target's lightness), which for manga records is not
# the model's input L.
METADATA = (schema.SOURCE_PATH, schema.ORIGINAL_HEIGHT, schema.ORIGINAL_WIDTH, schema.L,
            schema.RENDERING)
GZIP_SUFFIX = ".gz"


class RecordsMismatchError(ValueError):
  """Records that must not be trained on together; the message names the files."""


@dataclasses.dataclass(frozen=True)
class RecordsInfo:
  """What check_records found: one schema version, one embedder identity, one rendering, the
  shards per split."""
  records_dir: str
  schema_version: int
  embedder_id: str
  files: dict            # split -> sorted list of shard paths
  manifest: records_manifest.RecordsManifest | None   # when the directory has one
  rendering: str = schema.GRAY   # what the model sees: schema.GRAY or koala.manga's name

  def count(self, split: str) -> int:
    """Examples in a split: from the manifest when it has the count, else by reading the shards."""
    if self.manifest is not None and split in self.manifest.counts.written:
      return int(self.manifest.counts.written[split])
    return count_records(self.files.get(split, []))


def list_shards(records_dir: str, split: str) -> list[str]:
  return sorted(tf.io.gfile.glob(schema.shard_pattern(records_dir, split)))


def _compression(files: list[str]) -> str:
  kinds = {f.endswith(GZIP_SUFFIX) for f in files}
  if len(kinds) > 1:
    raise RecordsMismatchError(f"some shards are GZIP-compressed and some are not: {files}")
  return "GZIP" if kinds == {True} else ""


def first_record(path: str) -> schema.Record | None:
  for serialized in tf.data.TFRecordDataset(path, compression_type=_compression([path])).take(1):
    return schema.decode_example(serialized.numpy())
  return None   # an empty shard (a runner may write one)


def count_records(files: list[str]) -> int:
  if not files:
    return 0
  ds = tf.data.TFRecordDataset(files, compression_type=_compression(files))
  return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1).numpy())


def _describe(groups: dict, what: str) -> str:
  lines = [f"records disagree on {what}:"]
  for value, files in sorted(groups.items(), key=lambda kv: -len(kv[1])):
    shown = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
    lines.append(f"  {value!r}: {len(files)} file(s): {shown}")
  return "\n".join(lines)


def check_records(records_dir: str, splits=schema.SPLITS) -> RecordsInfo:
  """Opens the first record of every shard; refuses mixed schema versions, embedders or
  renderings (a batch of gray and manga records cannot be parsed together, and a model should
  learn one kind of input per job)."""
  files = {split: list_shards(records_dir, split) for split in splits}
  if not any(files.values()):
    raise FileNotFoundError(f"no records match {schema.shard_pattern(records_dir, '<split>')} "
                            f"for splits {list(splits)}; run pipeline.run first")
  versions, embedders, renderings = defaultdict(list), defaultdict(list), defaultdict(list)
  for split_files in files.values():
    for path in split_files:
      record = first_record(path)
      if record is not None:
        versions[record.schema_version].append(path)
        embedders[record.embedder_id].append(path)
        renderings[record.rendering].append(path)
  manifest = records_manifest.read(records_dir)
  if manifest is not None:
    manifest_path = records_manifest.path(records_dir)
    versions[manifest.schema_version].append(manifest_path)
    identity = None if manifest.embedder is None else manifest.embedder.identity
    for ident in identity if isinstance(identity, list) else [identity]:
      embedders[ident].append(manifest_path)
    renderings[manifest.rendering_name].append(manifest_path)
  if len(versions) > 1:
    raise RecordsMismatchError(_describe(versions, "the schema version"))
  if len(embedders) > 1:
    raise RecordsMismatchError(_describe(embedders, "the embedder identity") + (
        "\nA model learns one embedder's features; re-run the pipeline with one embedder."))
  if len(renderings) > 1:
    raise RecordsMismatchError(_describe(renderings, "the rendering") + (
        "\nGray and manga records cannot be mixed in one records directory; write each "
        "--render to its own --output_dir."))
  if not versions:
    raise FileNotFoundError(f"every shard under {records_dir} is empty")
  (version,), (embedder_id,), (rendering,) = versions, embedders, renderings
  if version != schema.SCHEMA_VERSION:
    raise RecordsMismatchError(
        f"records under {records_dir} have schema version {version}; this trainer reads "
        f"version {schema.SCHEMA_VERSION}: re-run the pipeline with this code")
  return RecordsInfo(records_dir, version, embedder_id, files, manifest, rendering)


@dataclasses.dataclass(frozen=True)
class ExampleGuidance:
  """How a dataset draws the hints and palette it adds to every example (koala.guidance), for
  training and for evaluation; not a user's guidance for a page (serving.hint_files).

  hints:   None draws each example's count as training does (training_hint_count); an int
           gives every example exactly that many (evaluation).
  palette: None gives the example's own palette with probability PALETTE_KEEP (training);
           True always; False never (NO_PALETTE).
  max_hints, patch: the static size of the draw and a fixed patch side (None: 1..9).
  seed:    with vary=False every draw is a function of (seed, the record's content hash): an
           example gets the same hints in every run, epoch and batch, and its hints for n are
           the first n of its hints for any larger count (same max_hints). vary=True (training)
           adds a fresh random number per example, so each epoch sees new hints.
  """
  hints: int | None = None
  palette: bool | None = None
  max_hints: int = guidance.MAX_TRAIN_HINTS
  patch: int | None = None
  seed: int = 0
  vary: bool = False


TRAINING_GUIDANCE = ExampleGuidance(vary=True)
VALIDATION_GUIDANCE = ExampleGuidance()   # the training distribution, fixed per example


def eval_guidance(hints: int, palette: bool = False, max_hints: int = 100, seed: int = 0):
  """Evaluation: exactly `hints` 5 x 5 dots per example (the first of max_hints seeded draws)."""
  return ExampleGuidance(hints=hints, palette=palette, max_hints=max(max_hints, hints),
                  patch=guidance.EVAL_PATCH, seed=seed)


def example_seeds(content_hash, g: ExampleGuidance):
  """(N,) content hashes -> (N, 2) int64 stateless seeds."""
  first = tf.strings.to_hash_bucket_fast(content_hash, 2 ** 62)
  if g.vary:
    second = tf.random.uniform(tf.shape(first), 0, 2 ** 62, tf.int64)
  else:
    second = tf.fill(tf.shape(first), tf.constant(g.seed, tf.int64))
  return tf.stack([first, second], axis=1)


def add_guidance(target_l, ab, seeds, g: ExampleGuidance) -> dict:
  """A batch's target L (N, S, S, 1) and ab (N, S, S, 2) in LAB units -> the hints and palette
  inputs."""
  def one(args):
    l_i, ab_i, seed = args
    s_count, s_hints, s_palette = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3))
    n = (guidance.training_hint_count(s_count, g.max_hints) if g.hints is None
         else tf.constant(g.hints, tf.int32))
    hints = guidance.sample_hints_tf(l_i, ab_i, n, s_hints, g.max_hints, g.patch)
    if g.palette is None:
      keep = tf.random.stateless_uniform([], s_palette) < guidance.PALETTE_KEEP
    else:
      keep = tf.constant(bool(g.palette))
    palette = tf.where(keep, guidance.palette_tf(l_i, ab_i), guidance.NO_PALETTE)
    return hints, palette
  hints, palette = tf.map_fn(
      one, (target_l, ab, seeds),
      fn_output_signature=(tf.TensorSpec(target_l.shape[1:3] + (guidance.HINT_CHANNELS,),
                                         tf.float32),
                           tf.TensorSpec((guidance.PALETTE_SIZE,), tf.float32)))
  return {HINTS_INPUT: hints, PALETTE_INPUT: palette}


def _to_model_io(serialized, embedder_id: str, image_size: int, with_metadata: bool,
                 guided: ExampleGuidance | None = None):
  """A batch of serialized examples -> (the model's inputs, ab / 128 [, metadata]), checked."""
  parsed = schema.parse_batch(serialized)
  checks = [
      tf.debugging.assert_equal(parsed[schema.VERSION],
                                tf.constant(schema.SCHEMA_VERSION, tf.int64),
                                message="a record has another schema version"),
      tf.debugging.assert_equal(parsed[schema.EMBEDDER_ID], tf.constant(embedder_id),
                                message=f"a record's embedder is not {embedder_id}"),
  ]
  with tf.control_dependencies(checks):
    input_l, ab = tf.identity(parsed[schema.INPUT_L]), parsed[schema.AB] / colour.AB_SCALE
  target_l = parsed[schema.L]
  if image_size != schema.IMAGE_SIZE:
    # Area averaging, as the pipeline shrinks images: no moire from screentone.
    input_l = tf.image.resize(input_l, (image_size, image_size), method="area")
    ab = tf.image.resize(ab, (image_size, image_size), method="area")
    target_l = tf.image.resize(target_l, (image_size, image_size), method="area")
    parsed[schema.L] = target_l
  inputs = {L_INPUT: input_l, EMBEDDING_INPUT: parsed[schema.EMBEDDING]}
  if guided is not None:
    # Hints are drawn where the colour image is flat, from its own L and ab: the user's dots
    # carry the colour of a region, whatever the page shows there (paper, screentone).
    inputs.update(add_guidance(target_l, ab * colour.AB_SCALE,
                               example_seeds(parsed[schema.CONTENT_HASH], guided), guided))
  if with_metadata:
    return inputs, ab, {k: parsed[k] for k in METADATA}
  return inputs, ab


def make_dataset(info: RecordsInfo, split: str, batch_size: int, *, training: bool,
                 shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER, cache: bool | str = False,
                 seed: int | None = None, image_size: int = schema.IMAGE_SIZE,
                 repeat: bool | None = None, drop_remainder: bool | None = None,
                 with_metadata: bool = False,
                 guided: ExampleGuidance | None = None) -> tf.data.Dataset:
  """One split as (inputs, target) batches.

  training=True shuffles shards and records, repeats forever and drops the last partial batch
  (so every step has the same shape); training=False reads in order, once, keeping every record.
  cache: False, True (memory) or a file path prefix. image_size < 224 averages L and ab down
  (for quick experiments and tests; the model must be built with the same image_size).
  with_metadata adds a third element: source path and original height and width (evaluation).
  guided: an ExampleGuidance adds the hints and palette inputs (at image_size), for the guided
  model; None gives the SPEC model's inputs.
  """
  files = info.files.get(split) or []
  if not files:
    raise FileNotFoundError(f"no {split} records under {info.records_dir}")
  repeat = training if repeat is None else repeat
  drop_remainder = training if drop_remainder is None else drop_remainder
  compression = _compression(files)

  ds = tf.data.Dataset.from_tensor_slices(files)
  if training:
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
                     cycle_length=min(len(files), 16), block_length=1,
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
  if cache:
    ds = ds.cache("" if cache is True else str(cache))
  if training and shuffle_buffer > 1:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  ds = ds.map(lambda s: _to_model_io(s, info.embedder_id, image_size, with_metadata, guided),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
  return ds.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(info: RecordsInfo, split: str, batch_size: int, *, training: bool) -> int:
  """Steps that cover a split once: whole batches when training (the last partial one is
  dropped), every example otherwise."""
  n = info.count(split)
  steps = n // batch_size if training else math.ceil(n / batch_size)
  if steps < 1:
    raise ValueError(f"the {split} split has {n} examples, fewer than one batch of {batch_size}")
  return steps
