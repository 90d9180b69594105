"""python -m trainer.task --records_dir=DIR --job_dir=DIR [--preset=NAME] [flags]

Trains the colorizer on the pipeline's records: Adam, MSE on ab / 128, validation on the `val`
split every epoch; runs the same locally, on a GPU VM and as a Vertex AI custom job.

Under job_dir (local or gs://):
  checkpoints/backup/   BackupAndRestore's state after every epoch: run the same command again
                        after a crash or kill -9 and training continues from the last finished
                        epoch, not from scratch ($AIP_CHECKPOINT_DIR replaces checkpoints/)
  checkpoints/best.keras  the model with the lowest val_loss so far
  logs/                 TensorBoard scalars and sample colorizations ($AIP_TENSORBOARD_LOG_DIR)
  history.json, training_curves.png, config.json
  model/colorizer.keras + model/embedder.json   the final model ($AIP_MODEL_DIR), see artifacts

A job directory belongs to one run: reusing it with other flags resumes the old run's state.
Flags override the preset (the original project's five configurations, default Koala_00001_20).

--hints trains the guided colorizer instead (trainer.model.build_guided_colorizer: the SPEC
model plus colour hints and a reference palette), with hints and palettes drawn on the fly from
each record's true colours (trainer.input.ExampleGuidance). It is saved to the same place under
the same names, so trainer.export and trainer.evaluate load either model.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

import keras
import tensorflow as tf

from koala import schema
from koala.embedder import EmbedderInfo
from trainer import artifacts, callbacks, presets
from trainer import input as trainer_input
from trainer.model import GUIDED_ARCHITECTURES, build_colorizer, build_guided_colorizer

_LOG = logging.getLogger(__name__)
MIXED_POLICIES = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
SAMPLE_IMAGES = 4


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  records_dir: str
  job_dir: str
  preset: str = presets.DEFAULT
  learning_rate: float = presets.get().learning_rate
  epochs: int = presets.get().epochs
  batch_size: int = presets.get().batch_size
  steps_per_epoch: int | None = None      # None: one pass over the train split
  validation_steps: int | None = None     # None: the whole val split
  mixed_precision: str | None = None      # None, "float16" or "bfloat16"
  distribute: str | None = None           # None or "mirrored"
  seed: int = 0
  shuffle_buffer: int = trainer_input.DEFAULT_SHUFFLE_BUFFER
  cache: bool = False
  width: float = 1.0                      # < 1: a narrow model, for tests and smoke runs only
  image_size: int = schema.IMAGE_SIZE     # < 224: records are averaged down (tests, smoke runs)
  verbose: int = 2
  hints: bool = False                     # True: the guided colorizer (hints + palette)
  architecture: str = GUIDED_ARCHITECTURES[0]   # the guided model's, see build_guided_colorizer
  max_minutes: float | None = None        # stop at the end of the first epoch past it; the
                                          # best checkpoint becomes the model


def parse_args(argv) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m trainer.task", description=__doc__.split("\n")[2],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--records_dir", required=True,
                 help="The pipeline's --output_dir (local or gs://).")
  p.add_argument("--job_dir", required=True, help="Where this run's outputs go (local or gs://).")
  p.add_argument("--preset", default=presets.DEFAULT, choices=sorted(presets.PRESETS))
  p.add_argument("--epochs", type=int)
  p.add_argument("--batch_size", type=int, help="Global batch size (split across GPUs).")
  p.add_argument("--learning_rate", type=float)
  p.add_argument("--steps_per_epoch", type=int, help="Default: one pass over the train split.")
  p.add_argument("--validation_steps", type=int, help="Default: the whole val split.")
  p.add_argument("--mixed_precision", nargs="?", const="float16", choices=sorted(MIXED_POLICIES),
                 help="Mixed precision (float32 outputs); bare flag: float16 with loss scaling.")
  p.add_argument("--distribute", choices=["mirrored"],
                 help="mirrored: tf.distribute.MirroredStrategy over all local GPUs.")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--shuffle_buffer", type=int, default=trainer_input.DEFAULT_SHUFFLE_BUFFER)
  p.add_argument("--cache", action="store_true", help="Cache the records in memory.")
  p.add_argument("--width", type=float,
                 help="Channel multiplier of every layer (default: the preset's, 1 but for "
                      "Koala_cpu).")
  p.add_argument("--image_size", type=int,
                 help="Train at this side (records are area-averaged down; default: the "
                      "preset's, 224 but for Koala_cpu).")
  p.add_argument("--max_minutes", type=float,
                 help="Time budget: training stops at the end of the first epoch that ends "
                      "past it, and the best checkpoint (lowest val_loss) becomes the model.")
  p.add_argument("--verbose", type=int, default=2)
  p.add_argument("--hints", action="store_true",
                 help="Train the guided colorizer (colour hints and a reference palette).")
  p.add_argument("--architecture", default=GUIDED_ARCHITECTURES[0], choices=GUIDED_ARCHITECTURES,
                 help="The guided model's hint path (with --hints); see docs/trainer.md.")
  return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
  preset = presets.get(args.preset).override(
      learning_rate=args.learning_rate, epochs=args.epochs, batch_size=args.batch_size,
      width=args.width, image_size=args.image_size)
  if args.max_minutes is not None and not args.max_minutes > 0:
    raise ValueError(f"--max_minutes must be positive, got {args.max_minutes}")
  return TrainConfig(
      records_dir=args.records_dir, job_dir=args.job_dir, preset=preset.name,
      learning_rate=preset.learning_rate, epochs=preset.epochs, batch_size=preset.batch_size,
      steps_per_epoch=args.steps_per_epoch, validation_steps=args.validation_steps,
      mixed_precision=args.mixed_precision, distribute=args.distribute, seed=args.seed,
      shuffle_buffer=args.shuffle_buffer, cache=args.cache, width=preset.width,
      image_size=preset.image_size, verbose=args.verbose, hints=args.hints,
      architecture=args.architecture, max_minutes=args.max_minutes)


def compile_model(model: keras.Model, learning_rate: float) -> keras.Model:
  """Adam + MSE on ab / 128, and the original project's "accuracy": Keras's default accuracy for
  this output, i.e. CategoricalAccuracy, the share of pixels whose argmax over (a, b) is right."""
  model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse",
                metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
  return model


def _strategy(name: str | None):
  if name == "mirrored":
    strategy = tf.distribute.MirroredStrategy()
    _LOG.info("MirroredStrategy over %d replica(s)", strategy.num_replicas_in_sync)
    return strategy
  return tf.distribute.get_strategy()


def trained_model_info(info: trainer_input.RecordsInfo) -> artifacts.TrainedModelInfo:
  """The description saved with the model: the records' embedder and rendering."""
  if info.manifest is None:
    _LOG.warning("%s has no %s: embedder.json will name only the identity %s",
                 info.records_dir, schema.MANIFEST, info.embedder_id)
    embedder = EmbedderInfo(identity=info.embedder_id)
  else:
    embedder = artifacts.records_embedder(info.manifest)
  return artifacts.TrainedModelInfo(embedder, info.rendering)


def build_model(config: TrainConfig) -> keras.Model:
  """The SPEC colorizer, or with config.hints the guided one."""
  if config.hints:
    return build_guided_colorizer(config.image_size, width=config.width,
                                  architecture=config.architecture)
  return build_colorizer(config.image_size, width=config.width)


def _guidance(config: TrainConfig, training: bool):
  if not config.hints:
    return None
  return trainer_input.TRAINING_GUIDANCE if training else trainer_input.VALIDATION_GUIDANCE


def _sample_batch(info, config: TrainConfig):
  ds = trainer_input.make_dataset(info, "val", SAMPLE_IMAGES, training=False,
                                  image_size=config.image_size,
                                  guided=_guidance(config, training=False))
  inputs, target = next(iter(ds))
  return {k: v.numpy() for k, v in inputs.items()}, target.numpy()


def train(config: TrainConfig, extra_callbacks=()):
  """Runs (or resumes) one training job; returns (model, history as {metric: [per epoch]}).
  extra_callbacks run after the job's own (e.g. a time budget in bench/quality.py)."""
  keras.utils.set_random_seed(config.seed)
  if config.mixed_precision:
    keras.mixed_precision.set_global_policy(MIXED_POLICIES[config.mixed_precision])
  try:
    return _train(config, list(extra_callbacks))
  finally:
    keras.mixed_precision.set_global_policy("float32")


def _train(config: TrainConfig, extra_callbacks: list):
  info = trainer_input.check_records(config.records_dir)
  if config.image_size % 8:
    raise ValueError(f"--image_size must be a multiple of 8, got {config.image_size}")
  steps = config.steps_per_epoch or trainer_input.steps_per_epoch(
      info, "train", config.batch_size, training=True)
  val_steps = config.validation_steps or trainer_input.steps_per_epoch(
      info, "val", config.batch_size, training=False)
  train_ds = trainer_input.make_dataset(
      info, "train", config.batch_size, training=True, shuffle_buffer=config.shuffle_buffer,
      cache=config.cache, seed=config.seed, image_size=config.image_size,
      guided=_guidance(config, training=True))
  val_ds = trainer_input.make_dataset(info, "val", config.batch_size, training=False,
                                      cache=config.cache, image_size=config.image_size,
                                      guided=_guidance(config, training=False))

  strategy = _strategy(config.distribute)
  with strategy.scope():
    model = compile_model(build_model(config), config.learning_rate)

  job = config.job_dir
  ckpt_dir = artifacts.checkpoint_dir(job)
  tb_dir = artifacts.tensorboard_dir(job)
  run_config = dataclasses.asdict(config) | {"steps_per_epoch": steps,
                                             "embedder_id": info.embedder_id}
  artifacts.write_json(artifacts.join(job, "config.json"), run_config)
  history_cb = callbacks.HistoryFile(job, run_config)
  best = keras.callbacks.ModelCheckpoint(artifacts.join(ckpt_dir, "best.keras"),
                                         monitor="val_loss", save_best_only=True)
  previous = [e["val_loss"] for e in callbacks.read_history(history_cb.path) if "val_loss" in e]
  if previous:
    best.best = min(previous)   # a resumed run keeps the best checkpoint of the killed one
  # Order matters at the end of an epoch: the history and the best model are written before
  # the backup, so a kill between them only makes the resumed run redo (and rewrite) that epoch.
  cbs = [
      history_cb,
      best,
      keras.callbacks.BackupAndRestore(artifacts.join(ckpt_dir, "backup"), save_freq="epoch",
                                       delete_checkpoint=False),
  ]
  if config.max_minutes is not None:
    cbs.append(callbacks.EpochTimeBudget(config.max_minutes * 60.0))
  if callbacks.tensorboard_available():
    cbs += [keras.callbacks.TensorBoard(tb_dir, write_graph=False, update_freq="epoch"),
            callbacks.SampleColorizations(tb_dir, *_sample_batch(info, config))]
  else:
    _LOG.warning("the tensorboard package is not installed: no TensorBoard logs (pip install "
                 "tensorboard); history.json and %s are written all the same",
                 artifacts.CURVES_FILENAME)
  model.fit(train_ds, epochs=config.epochs, steps_per_epoch=steps, validation_data=val_ds,
            validation_steps=val_steps, callbacks=cbs + extra_callbacks, verbose=config.verbose)

  if config.max_minutes is not None:
    model = artifacts.load_model_file(artifacts.join(ckpt_dir, "best.keras"))
    _LOG.info("the time budget's model is the best checkpoint (val_loss %.5f)", best.best)
  path = artifacts.save_trained(model, trained_model_info(info), artifacts.model_dir(job))
  _LOG.info("saved %s", path)
  epochs = callbacks.read_history(history_cb.path)
  return model, callbacks.history_lists(epochs)


def main(argv=None):
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
  try:
    config = config_from_args(parse_args(sys.argv[1:] if argv is None else argv))
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  _LOG.info("config: %s", config)
  train(config)


if __name__ == "__main__":
  main()
