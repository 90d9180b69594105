"""python -m pipeline.run --input=GLOB --output_dir=DIR [options] [Beam options]

Images (local or gs://) -> de-duplicated, decoded, letterboxed L / ab tensors (and with
--render=manga, seeded manga renderings of each image: what the model will see) -> Inception-ResNet-v2
embeddings of what the model sees (RunInference) -> tf.train.Examples -> sharded TFRecords per split, plus
`rejected.jsonl`, `skipped_gray.jsonl`, `duplicates.jsonl` and `manifest.json`.

Without --runner it runs on Beam's FnApiRunner (the engine under the DirectRunner) in one
process: it works offline, where DirectRunner would first try to fetch Prism.
The same graph runs on Dataflow with --runner=DataflowRunner.
"""
from __future__ import annotations

import json
import logging
import os
import sys

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions,
                                                  SetupOptions, StandardOptions)

from koala import embedder as koala_embedder
from koala import images, input_tree, records_manifest, schema
from pipeline import preprocess
from pipeline.embed import EmbedderModelHandler
from pipeline.options import KoalaOptions, refuse_unknown_flags

NAMESPACE = "koala"
REJECTED = "rejected"
GRAY = "gray"
DUPLICATE = "duplicate"
_LOG = logging.getLogger(__name__)


def input_patterns(pattern: str) -> list[str]:
  """The glob(s) for --input. A bare folder (local, or a gs:// prefix that is not a file) means
  every file below it. Beam's '**/' needs at least one folder level, so 'a/**/*.png' is also
  tried as 'a/*.png', as users of other globs expect."""
  if not any(c in pattern for c in "*?["):
    if pattern.endswith("/") or os.path.isdir(pattern) or (
        "://" in pattern and not FileSystems.exists(pattern)):
      pattern = pattern.rstrip("/") + "/**"
  patterns = [pattern]
  while any("/**/" in p for p in patterns):
    p = next(p for p in patterns if "/**/" in p)
    patterns.remove(p)
    patterns += [p.replace("/**/", "/\0", 1), p.replace("/**/", "/", 1)]
  return sorted(p.replace("/\0", "/**/") for p in patterns)


def check_inputs_exist(patterns: list[str]) -> None:
  """Fails before launching anything when nothing matches: a typo should not cost a job."""
  results = FileSystems.match(patterns, limits=[1] * len(patterns))
  if not any(r.metadata_list for r in results):
    raise ValueError(f"--input matches no files: {' or '.join(patterns)}")


LISTED_CHECKED = 20


def listed_inputs(list_path: str) -> list[str]:
  """--input_list: the paths it names, one a line (blank lines and '#' comments skipped)."""
  with FileSystems.open(list_path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    lines = f.read().decode("utf-8").splitlines()
  paths = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
  if not paths:
    raise ValueError(f"--input_list {list_path} names no files")
  return paths


def check_one_input_flag(opts) -> None:
  """pipeline.run reads --input (a glob) or --input_list (named files), one of the two."""
  if (opts.input is None) == (opts.input_list is None):
    raise ValueError("give --input (a glob of images) or --input_list (a file naming them), "
                     "one of the two")


def input_root(pattern: str) -> str:
  """The folder that --input's matches are relative to (their tree is kept under --output_dir):
  the folder above the first wildcard ('art/**/*.png' -> 'art'; a folder 'vol1' -> 'vol1'; a
  file 'a/p.png' -> 'a')."""
  pattern = input_patterns(pattern)[0]   # a bare folder becomes folder/**
  head = pattern[:min([pattern.index(c) for c in "*?[" if c in pattern] or [len(pattern)])]
  root = head.rsplit("/", 1)[0] if "/" in head else ""
  return absolute(root or ".")


def absolute(path: str) -> str:
  return path if "://" in path else os.path.abspath(path)


def relative_to(path: str, root: str) -> str:
  path = absolute(path)
  return path[len(root):].lstrip("/") if path.startswith(root + "/") else os.path.basename(path)


class HashFile(beam.DoFn):
  """path -> (content hash, path); unreadable files, and links that lead out of the input
  folder `root` (koala.input_tree; None for files named in --input_list), go to the
  `rejected` output."""

  def __init__(self, root: str):
    self.root = root
    self.inputs = Metrics.counter(NAMESPACE, "inputs")
    self.rejected = Metrics.counter(NAMESPACE, "rejected")

  def process(self, path: str):
    self.inputs.inc()
    outside = (None if self.root is None or "://" in path
               else input_tree.outside_root(path, self.root))
    if outside:
      self.rejected.inc()
      yield beam.pvalue.TaggedOutput(REJECTED, {"path": path, "reason": outside})
      return
    try:
      with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        data = f.read()
    except Exception as e:
      self.rejected.inc()
      yield beam.pvalue.TaggedOutput(REJECTED, {"path": path, "reason": f"unreadable: {e}"})
      return
    yield preprocess.content_hash(data), path


class KeepFirstOfDuplicates(beam.DoFn):
  """(hash, [paths]) -> the lexicographically first path; the others go to `duplicate`."""

  def __init__(self):
    self.duplicates = Metrics.counter(NAMESPACE, "duplicates")

  def process(self, element):
    digest, paths = element
    first, *others = sorted(paths)
    for other in others:
      self.duplicates.inc()
      yield beam.pvalue.TaggedOutput(DUPLICATE, {"path": other, "duplicate_of": first,
                                                 "content_hash": digest})
    yield digest, first


class PrepareImage(beam.DoFn):
  """(hash, path) -> (PreparedImage, embedder input); or a reject / a gray skip."""

  def __init__(self, config: preprocess.PrepareConfig):
    self.config = config
    self.rejected = Metrics.counter(NAMESPACE, "rejected")
    self.gray = Metrics.counter(NAMESPACE, "skipped_gray")
    self.rendered = Metrics.counter(NAMESPACE, "renderings")

  def process(self, element):
    digest, path = element
    try:
      with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        data = f.read()
      renderings = preprocess.prepare_images(data, path, self.config, digest=digest)
    except preprocess.SkipGray as e:
      self.gray.inc()
      yield beam.pvalue.TaggedOutput(GRAY, {"path": path, "chroma": round(e.chroma, 3)})
      return
    except (images.ImageError, OSError) as e:
      self.rejected.inc()
      yield beam.pvalue.TaggedOutput(REJECTED, {"path": path, "reason": str(e)})
      return
    for prepared in renderings:
      self.rendered.inc()
      yield prepared, prepared.embedder_input


class ToExample(beam.DoFn):
  """(PreparedImage, PredictionResult) -> (split, serialized tf.train.Example)."""

  def __init__(self, val_fraction: float, test_fraction: float, split_salt: str):
    self.val_fraction = val_fraction
    self.test_fraction = test_fraction
    self.split_salt = split_salt
    self.written = {s: Metrics.counter(NAMESPACE, f"written_{s}") for s in schema.SPLITS}

  def process(self, element):
    prepared, result = element
    split = schema.split_for_hash(prepared.content_hash, self.val_fraction, self.test_fraction,
                                  self.split_salt)
    self.written[split].inc()
    yield split, schema.encode_example(
        l_u8=prepared.l_u8, ab_u8=prepared.ab_u8, embedding=result.inference,
        source_path=prepared.source_path, content_hash=prepared.content_hash,
        original_size=prepared.original_size, embedder_id=result.model_id,
        input_u8=prepared.input_u8, rendering=prepared.rendering,
        rendering_seed=prepared.rendering_seed)


def write_jsonl(pcoll, output_dir: str, filename: str, label: str):
  return (pcoll
          | f"{label}ToJson" >> beam.Map(lambda d: json.dumps(d, sort_keys=True))
          | f"Write{label}" >> beam.io.WriteToText(
              f"{output_dir}/{filename}", shard_name_template="", num_shards=1))


def write_manifest(counts: dict, identities: list, output_dir: str, options: dict,
                   rendering: records_manifest.RecordsRendering):
  """Writes manifest.json; runs once, after every count is known. Returns the RecordsManifest."""
  ids = sorted(set(identities))
  manifest = records_manifest.RecordsManifest(
      rendering=rendering,
      schema_version=schema.SCHEMA_VERSION,
      image_size=schema.IMAGE_SIZE,
      embedder_size=schema.EMBEDDER_SIZE,
      embedding_dim=schema.EMBEDDING_DIM,
      counts=records_manifest.RecordCounts(
          inputs=counts.get("inputs", 0),
          written={s: counts.get(f"written_{s}", 0) for s in schema.SPLITS},
          rejected=counts.get(REJECTED, 0),
          skipped_gray=counts.get(GRAY, 0),
          duplicates=counts.get(DUPLICATE, 0)),
      embedder=koala_embedder.EmbedderInfo.for_flags(
          options["embedder"], options["embedder_weights"], options["embedder_seed"],
          identity=ids[0] if len(ids) == 1 else ids or None),
      split=records_manifest.SplitRule(salt=options["split_salt"],
                                       val_fraction=options["val_fraction"],
                                       test_fraction=options["test_fraction"]),
      options=options)
  records_manifest.write(output_dir, manifest, write_bytes=_write_file)
  return manifest


def _write_file(path: str, data: bytes) -> None:
  with FileSystems.create(path) as f:
    f.write(data)


def count(pcoll, name: str):
  return (pcoll | f"Count_{name}" >> beam.combiners.Count.Globally()
          | f"Key_{name}" >> beam.Map(lambda n: (name, n)))


def build_pipeline(p: beam.Pipeline, opts: KoalaOptions) -> None:
  out = opts.output_dir.rstrip("/")
  config = prepare_config(opts)
  handler = KeyedModelHandler(EmbedderModelHandler(
      opts.embedder, opts.embedder_weights, opts.embedder_seed,
      opts.min_batch_size, opts.max_batch_size))

  if opts.input_list:   # files named one by one: each read as named, wherever it lies
    paths = (p | "ListedInputs" >> beam.Create(listed_inputs(opts.input_list))
             | "DistinctPaths" >> beam.Distinct())
    root = None
  else:
    paths = (p | "InputPatterns" >> beam.Create(input_patterns(opts.input))
             | "MatchFiles" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
             | "Paths" >> beam.Map(lambda m: m.path)
             | "DistinctPaths" >> beam.Distinct())
    root = input_root(opts.input)
  hashed = paths | "HashFiles" >> beam.ParDo(HashFile(root)).with_outputs(REJECTED, main="hashed")
  unique = (hashed.hashed | "GroupByHash" >> beam.GroupByKey()
            | "DropDuplicates" >> beam.ParDo(KeepFirstOfDuplicates()).with_outputs(
                DUPLICATE, main="unique"))
  prepared = (unique.unique | "Prepare" >> beam.ParDo(PrepareImage(config)).with_outputs(
      REJECTED, GRAY, main="prepared"))
  embedded = prepared.prepared | "Embed" >> RunInference(handler)
  examples = embedded | "ToExample" >> beam.ParDo(ToExample(
      opts.val_fraction, opts.test_fraction, opts.split_salt))

  suffix = ".tfrecord" + (".gz" if opts.compression == "gzip" else "")
  counts = [count(paths, "inputs")]
  for split in schema.SPLITS:
    records = (examples | f"Select_{split}" >> beam.Filter(lambda kv, s=split: kv[0] == s)
               | f"Bytes_{split}" >> beam.Values())
    records | f"Write_{split}" >> beam.io.WriteToTFRecord(
        f"{out}/{split}/{split}", file_name_suffix=suffix, num_shards=opts.num_shards,
        compression_type=CompressionTypes.AUTO)
    counts.append(count(records, f"written_{split}"))

  rejected = (hashed[REJECTED], prepared[REJECTED]) | "AllRejected" >> beam.Flatten()
  write_jsonl(rejected, out, schema.REJECTED, "Rejected")
  write_jsonl(prepared[GRAY], out, schema.SKIPPED_GRAY, "SkippedGray")
  write_jsonl(unique[DUPLICATE], out, schema.DUPLICATES, "Duplicates")
  counts += [count(rejected, REJECTED), count(prepared[GRAY], GRAY),
             count(unique[DUPLICATE], DUPLICATE)]

  identities = (embedded | "Identity" >> beam.Map(lambda kv: kv[1].model_id)
                | "DistinctIdentity" >> beam.Distinct())
  options = {k: getattr(opts, k) for k in (
      "input", "output_dir", "embedder", "embedder_weights", "embedder_seed", "val_fraction",
      "test_fraction", "split_salt", "gray_chroma_threshold", "min_side", "max_pixels",
      "num_shards", "compression", "min_batch_size", "max_batch_size", "render",
      "renderings_per_image")}
  (counts | "AllCounts" >> beam.Flatten() | "CountsDict" >> beam.combiners.ToDict()
   | "WriteManifest" >> beam.Map(write_manifest, identities=beam.pvalue.AsList(identities),
                                 output_dir=out, options=options,
                                 rendering=rendering_section(config)))


def prepare_config(opts: KoalaOptions) -> preprocess.PrepareConfig:
  """The per-image settings from the flags; ValueError (one sentence) when out of range."""
  return preprocess.PrepareConfig(max_pixels=opts.max_pixels, min_side=opts.min_side,
                                  gray_chroma_threshold=opts.gray_chroma_threshold,
                                  render=opts.render, renderings=opts.renderings_per_image)


def rendering_section(config: preprocess.PrepareConfig) -> records_manifest.RecordsRendering:
  """manifest.json's "rendering": what the model sees."""
  return records_manifest.RecordsRendering(
      kind=config.render, name=config.rendering_name, per_image=config.renderings,
      input="the colour image's own L" if config.render == schema.GRAY else
            "koala.manga.render_manga(image, seed=koala.manga.rendering_seed(content "
            "hash, index)), letterboxed to 224 (L) and 299 (embedder)",
      target="the colour image's own L and ab")


def pipeline_options(argv) -> PipelineOptions:
  """Beam options with an offline-friendly local default.

  Without --runner: Beam's FnApiRunner (the engine the DirectRunner itself falls back to, minus
  the attempt to download Prism) in one process. The embedder dominates the cost and TensorFlow
  already spreads one batch over every core; worker processes would each load their own
  Inception-ResNet-v2 and fight over the same cores (slower, not faster: docs/benchmarks.md,
  "Figures behind choices in the code"). `--direct_running_mode=multi_threading
  --direct_num_workers=N` or `multi_processing` remain available, e.g. with a small hub embedder on
  a many-core machine.
  """
  refuse_unknown_flags(argv, "Koala")
  options = PipelineOptions(argv)
  standard = options.view_as(StandardOptions)
  if standard.runner is None:
    standard.runner = "FnApiRunner"
    direct = options.view_as(DirectOptions)
    if not any(a.startswith("--direct_running_mode") for a in argv):
      direct.direct_running_mode = "in_memory"
    if not any(a.startswith("--direct_num_workers") for a in argv):
      direct.direct_num_workers = 1
  options.view_as(SetupOptions).save_main_session = False
  return options


def run(argv=None, test_pipeline=None):
  """Builds and runs the pipeline; returns the PipelineResult (finished)."""
  argv = list(sys.argv[1:] if argv is None else argv)
  options = pipeline_options(argv)
  opts = options.view_as(KoalaOptions)
  prepare_config(opts)   # a rendering option out of range fails here, before any work
  if koala_embedder.has_random_weights(opts.embedder, opts.embedder_weights):
    _LOG.warning("=" * 78 + "\n" + koala_embedder.RANDOM_WARNING + "\n" + "=" * 78)
  FileSystems.set_options(options)   # gs:// credentials (or --no_auth) for the check below
  check_one_input_flag(opts)
  # a list's first names stand for it: matching 100,000 named objects one by one costs minutes
  check_inputs_exist(input_patterns(opts.input) if opts.input
                     else listed_inputs(opts.input_list)[:LISTED_CHECKED])
  return run_to_end(options, lambda p: build_pipeline(p, opts), test_pipeline)


def run_to_end(options: PipelineOptions, build, test_pipeline=None):
  """Builds the graph with build(pipeline), runs it and waits; returns the PipelineResult.
  Shared by pipeline.run and serving.beam_colorize."""
  p = test_pipeline or beam.Pipeline(options=options)
  build(p)
  result = p.run()
  result.wait_until_finish()
  return result


if __name__ == "__main__":
  logging.getLogger().setLevel(logging.INFO)
  try:
    run()
  except (ValueError, FileNotFoundError) as e:   # bad flags, no inputs: one sentence, exit 2
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
