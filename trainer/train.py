"""The original project's Python entry point, on folders of plain images:

    from trainer.train import train_model
    model, history = train_model("art/train", "art/val", "art/test", learning_rate=1e-5,
                                 epochs=20, batch_size=32, model_name="Koala_00001_20")

It runs the Beam pipeline (pipeline.run) on each folder into a cache under the job directory,
trains with trainer.task and, when there is a test folder, evaluates on it (trainer.evaluate,
written to <job_dir>/evaluation/test/). The job directory is <jobs_root>/<model_name>, so one
model name is one resumable job: calling again after a crash continues it.

The cache: each folder's records live in <job_dir>/cache/runs/<split>/ next to inputs.json, a
fingerprint of the folder (every file's path, size and modification time) and of the embedder
options. A folder is re-processed only when that fingerprint changes: preprocessing with the
Inception-ResNet-v2 embedder runs at a few images per second on a CPU, so redoing it on every
call would cost far more than the training the user asked for. Each folder becomes one split
(val_folder=None holds out 10% of the training folder, as the original project did; test_folder may
be None).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import tensorflow as tf

from koala import embedder as koala_embedder
from koala import records_manifest, schema
from trainer import artifacts, evaluate, task
from trainer import input as trainer_input

DEFAULT_JOBS_ROOT = "koala_jobs"
HELD_OUT_VAL = 0.1
_LOG = logging.getLogger(__name__)


def folder_fingerprint(folder: str, options: dict) -> str:
  """sha256 over (relative path, size, mtime) of every file below folder, and the options."""
  h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
  root = folder.rstrip("/")
  entries = []
  for dirpath, _, filenames in tf.io.gfile.walk(root):
    for name in filenames:
      path = f"{dirpath.rstrip('/')}/{name}"
      st = tf.io.gfile.stat(path)
      entries.append((path[len(root):], st.length, st.mtime_nsec))
  if not entries:
    raise FileNotFoundError(f"no files under {folder}")
  for entry in sorted(entries):
    h.update(repr(entry).encode())
  return h.hexdigest()


def _run_pipeline(folder: str, out_dir: str, split: str, embedder_args: list[str],
                  pipeline_args: list[str]) -> None:
  from pipeline import run as pipeline_run   # Beam is only needed here
  val, test = {"train": (0.0, 0.0), "val": (1.0, 0.0), "test": (0.0, 1.0),
               "train+val": (HELD_OUT_VAL, 0.0)}[split]
  if tf.io.gfile.exists(out_dir):
    tf.io.gfile.rmtree(out_dir)   # stale shards of an older run must not mix with the new ones
  pipeline_run.run([f"--input={folder}", f"--output_dir={out_dir}", f"--val_fraction={val}",
                    f"--test_fraction={test}", *embedder_args, *pipeline_args])


def prepare_records(folders: dict, cache_dir: str, embedder_args: list[str],
                    pipeline_args: list[str] = ()) -> str:
  """{"train": dir, "val": dir or None, "test": dir or None} -> a records dir with every split.

  Runs the pipeline only for folders whose fingerprint changed, then copies the shards of
  every run into <cache_dir>/records/<split>/ with a combined manifest.json.
  """
  runs = {}
  for split, folder in folders.items():
    if folder is None:
      continue
    kind = "train+val" if split == "train" and folders.get("val") is None else split
    run_dir = artifacts.join(cache_dir, "runs", split)
    stamp_path = artifacts.join(run_dir, "inputs.json")
    stamp = {"folder": folder, "split": kind,
             "fingerprint": folder_fingerprint(folder, {"embedder": embedder_args, "kind": kind})}
    if (tf.io.gfile.exists(stamp_path)
        and json.loads(artifacts.read_text(stamp_path)) == stamp
        and tf.io.gfile.exists(artifacts.join(run_dir, schema.MANIFEST))):
      _LOG.info("records of %s are up to date in %s", folder, run_dir)
    else:
      _LOG.info("running the pipeline on %s -> %s", folder, run_dir)
      _run_pipeline(folder, run_dir, kind, embedder_args, list(pipeline_args))
      artifacts.write_json(stamp_path, stamp)
    runs[split] = run_dir
  return _combine(runs, artifacts.join(cache_dir, "records"))


def _combine(runs: dict, records_dir: str) -> str:
  """Copies each run's shards into one records dir (split by split) with one manifest."""
  if tf.io.gfile.exists(records_dir):
    tf.io.gfile.rmtree(records_dir)
  manifests = {s: records_manifest.read(d) for s, d in runs.items()}
  written = {s: 0 for s in schema.SPLITS}
  for run_dir, manifest in zip(runs.values(), manifests.values()):
    for split in schema.SPLITS:
      if not manifest.counts.written.get(split):
        continue   # a run writes (empty) shards for every split; a split has one owning run
      shards = trainer_input.list_shards(run_dir, split)
      if shards:
        tf.io.gfile.makedirs(artifacts.join(records_dir, split))
      for shard in shards:
        tf.io.gfile.copy(shard, artifacts.join(records_dir, split, shard.rsplit("/", 1)[1]),
                         overwrite=True)
      written[split] += manifest.counts.written[split]
  first = next(iter(manifests.values()))
  combined = dataclasses.replace(
      first, counts=records_manifest.RecordCounts(written=written),
      runs={s: m.options.get("input") for s, m in manifests.items()})
  tf.io.gfile.makedirs(records_dir)
  records_manifest.write(records_dir, combined)
  return records_dir


def train_model(train_folder: str, val_folder: str | None, test_folder: str | None,
                learning_rate: float, epochs: int, batch_size: int, model_name: str, *,
                jobs_root: str = DEFAULT_JOBS_ROOT, job_dir: str | None = None,
                embedder: str = koala_embedder.KERAS_NAME,
                embedder_weights: str = koala_embedder.IMAGENET,
                embedder_seed: int = koala_embedder.DEFAULT_SEED,
                pipeline_args: list[str] = (), **train_options):
  """Images in folders -> records (cached) -> a trained colorizer; returns (model, history).

  history is {metric: [value per epoch]} (Keras's History.history shape) across resumes.
  train_options go to trainer.task.TrainConfig (steps_per_epoch, seed, mixed_precision, ...).
  Offline, pass embedder_weights="random" (tests and demos only: see koala.embedder).
  """
  job_dir = job_dir or artifacts.join(jobs_root, model_name)
  embedder_args = [f"--embedder={embedder}", f"--embedder_weights={embedder_weights}",
                   f"--embedder_seed={embedder_seed}"]
  records_dir = prepare_records({"train": train_folder, "val": val_folder, "test": test_folder},
                                artifacts.join(job_dir, "cache"), embedder_args, pipeline_args)
  config = task.TrainConfig(records_dir=records_dir, job_dir=job_dir, preset=model_name,
                            learning_rate=learning_rate, epochs=epochs, batch_size=batch_size,
                            **train_options)
  model, history = task.train(config)
  if test_folder is not None:
    info = trainer_input.check_records(records_dir)
    results, grid = evaluate.evaluate(model, info, "test", batch_size)
    evaluate.write_outputs(results, grid, artifacts.join(job_dir, "evaluation", "test"))
    _LOG.info("test split:\n%s", evaluate.format_table(results))
  return model, history
