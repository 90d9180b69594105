"""The full-size colorizer: SPEC.md's layers and parameter count, and one real training step."""
import numpy as np

from trainer import task
from trainer.model import build_colorizer, model_image_size

SPEC_PARAMS = 6_711_010


def test_full_size_model_has_spec_parameter_count_and_trains_one_step():
  model = build_colorizer()
  assert model.count_params() == SPEC_PARAMS
  assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == SPEC_PARAMS
  assert model_image_size(model) == 224
  assert model.get_layer("fuse").output.shape[1:] == (28, 28, 256 + 1536)
  assert model.output.shape[1:] == (224, 224, 2)

  task.compile_model(model, 1e-3)
  rng = np.random.default_rng(0)
  x = {"l": rng.uniform(0, 100, (2, 224, 224, 1)).astype(np.float32),
       "embedding": rng.normal(size=(2, 1536)).astype(np.float32)}
  y = rng.uniform(-0.5, 0.5, (2, 224, 224, 2)).astype(np.float32)
  before = model.get_layer("decoder_ab").get_weights()[0].copy()
  logs = model.train_on_batch(x, y, return_dict=True)
  assert np.isfinite(logs["loss"]) and 0 <= logs["accuracy"] <= 1
  assert not np.allclose(before, model.get_layer("decoder_ab").get_weights()[0])
  pred = model.predict(x, verbose=0)
  assert pred.dtype == np.float32 and np.abs(pred).max() <= 1.0   # tanh: ab / 128 in [-1, 1]


def test_width_scales_hidden_layers_only():
  narrow = build_colorizer(image_size=56, width=0.25)
  assert narrow.get_layer("encoder_0").filters == 16
  assert narrow.get_layer("decoder_ab").filters == 2
  assert model_image_size(narrow) == 56
