"""Keras callbacks that leave a training job's record under its job directory.

  * HistoryFile: history.json after every epoch, and the PNG of the training curves. It is
    rewritten epoch by epoch, not at the end, so that a run killed and resumed (BackupAndRestore)
    still has one history covering every epoch; each entry names the process that ran it, which
    is how the resume test sees that a restart did not start over.
  * SampleColorizations: a few validation images (gray input | prediction | ground truth) into
    TensorBoard at the end of each epoch, to see what the numbers mean.
Both write through tf.io.gfile, so a gs:// job directory works.
"""
from __future__ import annotations

import io
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from koala import colour
from trainer import artifacts
from trainer.model import L_INPUT


def tensorboard_available() -> bool:
  """tf.summary needs the tensorboard package, which TensorFlow does not pull in by itself."""
  import importlib.util
  return importlib.util.find_spec("tensorboard") is not None


def history_lists(epochs: list[dict]) -> dict:
  """[{"epoch": 0, "loss": ..}, ..] -> {"loss": [..], ..}, the shape of keras History.history."""
  keys = [k for k in (epochs[0] if epochs else {}) if k not in ("epoch", "pid", "time")]
  return {k: [e.get(k) for e in epochs] for k in keys}


def read_history(path: str) -> list[dict]:
  if not tf.io.gfile.exists(path):
    return []
  return json.loads(artifacts.read_text(path)).get("epochs", [])


def plot_curves(epochs: list[dict], path: str, title: str = "") -> None:
  """Loss and the original project's 'accuracy', train and val, per epoch, as one PNG."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  hist = history_lists(epochs)
  x = [e["epoch"] + 1 for e in epochs]
  panels = [m for m in ("loss", "accuracy") if m in hist]
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
  for ax, metric in zip(axes[0], panels):
    for key, style in ((metric, "-o"), (f"val_{metric}", "-s")):
      if key in hist:
        ax.plot(x, hist[key], style, label=key, markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric if metric == "accuracy" else "MSE on ab / 128")
    ax.set_title(f"{metric} (the original project's definition)" if metric == "accuracy"
                 else metric)
    if metric == "loss":
      ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(title)
  artifacts.write_bytes(path, figure_png(fig))


def figure_png(fig) -> bytes:
  """A finished matplotlib figure as PNG bytes (laid out tight, 100 dpi); the figure is closed,
  so pyplot does not keep it."""
  from matplotlib import pyplot as plt
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100)
  plt.close(fig)
  return buf.getvalue()


class HistoryFile(keras.callbacks.Callback):
  """Keeps <job_dir>/history.json and training_curves.png current after every epoch."""

  def __init__(self, job_dir: str, config: dict):
    super().__init__()
    self.path = artifacts.join(job_dir, artifacts.HISTORY_FILENAME)
    self.curves = artifacts.join(job_dir, artifacts.CURVES_FILENAME)
    self.config = config
    self.epochs: list[dict] = []
    self._started = False

  def on_epoch_begin(self, epoch, logs=None):
    if not self._started:
      # The first epoch of this process: drop what a killed run wrote past its last backup.
      self.epochs = [e for e in read_history(self.path) if e["epoch"] < epoch]
      self._started = True

  def on_epoch_end(self, epoch, logs=None):
    entry = {"epoch": int(epoch), "pid": os.getpid(), "time": round(time.time(), 3)}
    entry.update({k: float(v) for k, v in (logs or {}).items()
                  if isinstance(v, (int, float, np.floating, np.integer)) or np.ndim(v) == 0})
    self.epochs = [e for e in self.epochs if e["epoch"] < epoch] + [entry]
    artifacts.write_json(self.path, {"config": self.config, "epochs": self.epochs})
    plot_curves(self.epochs, self.curves, title=self.config.get("preset", ""))


class EpochTimeBudget(keras.callbacks.Callback):
  """Stops training at the end of the first epoch that ends more than `seconds` after training
  began (trainer.task --max_minutes): whole epochs only, so every epoch is validated and
  checkpointed, and the time past the budget is at most one epoch."""

  def __init__(self, seconds: float):
    super().__init__()
    self.seconds = float(seconds)
    self.start = None

  def on_train_begin(self, logs=None):
    self.start = time.monotonic()

  def on_epoch_end(self, epoch, logs=None):
    if time.monotonic() - self.start > self.seconds:
      self.model.stop_training = True


def colorize_lab(l: np.ndarray, ab_norm: np.ndarray) -> np.ndarray:
  """L (..., H, W, 1) in [0, 100] and ab / 128 -> sRGB uint8, via koala.colour."""
  lab = np.concatenate([l, colour.denormalize_ab(ab_norm)], axis=-1)
  return colour.to_uint8(colour.lab_to_rgb(lab))


def sample_strip(l: np.ndarray, ab_pred: np.ndarray, ab_true: np.ndarray) -> np.ndarray:
  """(N, H, W, ...) -> (N, H, 3W, 3) uint8: gray input | prediction | ground truth."""
  gray = colorize_lab(l, np.zeros_like(ab_true))
  return np.concatenate([gray, colorize_lab(l, ab_pred), colorize_lab(l, ab_true)], axis=2)


class SampleColorizations(keras.callbacks.Callback):
  """Writes a few validation colorizations to TensorBoard as images after each epoch."""

  def __init__(self, log_dir: str, inputs: dict, target: np.ndarray):
    super().__init__()
    self.inputs = {k: np.asarray(v) for k, v in inputs.items()}
    self.target = np.asarray(target)
    self.writer = tf.summary.create_file_writer(artifacts.join(log_dir, "samples"))

  def on_epoch_end(self, epoch, logs=None):
    pred = np.asarray(self.model.predict(self.inputs, verbose=0), np.float32)
    strip = sample_strip(self.inputs[L_INPUT], pred, self.target)
    with self.writer.as_default():
      tf.summary.image("gray | prediction | truth", strip, step=epoch,
                       max_outputs=len(strip))
    self.writer.flush()
