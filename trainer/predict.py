"""What both evaluations (trainer.evaluate, and trainer.guided_eval for a guided model) compute
the same way: the model's ab at the records' 224, the mean-colour baseline and an image's own
box inside its square.

Why a module of its own: evaluate runs guided_eval for --hints, and guided_eval needs these
helpers; here, neither has to import the other to get them, so the imports run one way.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from koala import colour, guidance, images, schema
from trainer import input as trainer_input
from trainer.model import (EMBEDDING_INPUT, HINTS_INPUT, L_INPUT, PALETTE_INPUT, is_guided,
                           model_image_size)

MAX_MEAN_EXAMPLES = 5000


def mean_ab(info: trainer_input.RecordsInfo, split: str = "train",
            max_examples: int = MAX_MEAN_EXAMPLES) -> np.ndarray:
  """The split's mean ab (LAB units) over every pixel of up to max_examples records."""
  ds = trainer_input.make_dataset(info, split, 64, training=False).unbatch().take(max_examples)
  total, n = np.zeros(2, np.float64), 0
  for batch in ds.batch(64):
    ab = batch[1].numpy().astype(np.float64) * colour.AB_SCALE
    total += ab.sum(axis=(0, 1, 2))
    n += ab.shape[0] * ab.shape[1] * ab.shape[2]
  if n == 0:
    raise ValueError(f"no {split} records to compute the mean colour from")
  return (total / n).astype(np.float32)


def predict_ab(model, inputs: dict) -> np.ndarray:
  """ab / 128 at 224, whatever size the model works at (a smaller one is fed area-averaged L and
  its chroma upsampled bilinearly, as serving puts small chroma on a full-size L).

  A guided model gets the inputs' "hints" (at 224, resized to its size) and "palette", or none
  (automatic mode) where the inputs have none."""
  size = model_image_size(model)
  l = inputs[L_INPUT]
  if size != schema.IMAGE_SIZE:
    l = tf.image.resize(l, (size, size), method="area")
  feed = {L_INPUT: l, EMBEDDING_INPUT: inputs[EMBEDDING_INPUT]}
  if is_guided(model):
    n = int(l.shape[0])
    hints = inputs.get(HINTS_INPUT)
    feed[HINTS_INPUT] = (np.zeros((n, size, size, guidance.HINT_CHANNELS), np.float32)
                         if hints is None else guidance.resize_hints_tf(hints, size))
    palette = inputs.get(PALETTE_INPUT)
    feed[PALETTE_INPUT] = (np.zeros((n, guidance.PALETTE_SIZE), np.float32)
                           if palette is None else palette)
  pred = model.predict_on_batch(feed)
  pred = tf.convert_to_tensor(np.asarray(pred, np.float32))
  if size != schema.IMAGE_SIZE:
    pred = tf.image.resize(pred, (schema.IMAGE_SIZE, schema.IMAGE_SIZE), method="bilinear")
  return np.asarray(pred, np.float32)


def crop_to_image(height: int, width: int):
  """The image's own box inside its 224 x 224 letterboxed square."""
  box = images.letterbox_box(height, width, schema.IMAGE_SIZE)
  return lambda a: a[box.top:box.top + box.height, box.left:box.left + box.width]
