"""The full-size colorizer: docs/SPEC.md's layers and parameter count, and one real training
step."""
import numpy as np
import pytest

from trainer import task
from trainer.model import EMBEDDING_INPUT, L_INPUT, build_colorizer, model_image_size

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
  x = {L_INPUT: rng.uniform(0, 100, (2, 224, 224, 1)).astype(np.float32),
       EMBEDDING_INPUT: rng.normal(size=(2, 1536)).astype(np.float32)}
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


@pytest.mark.slow   # saves and reloads the full-size guided model
def test_guided_model_inputs_outputs_and_round_trip(tmp_path):
  import keras

  from koala import guidance
  from trainer.model import (GUIDED_ARCHITECTURES, HINTS_INPUT, PALETTE_INPUT,
                             build_guided_colorizer, is_guided)
  assert not is_guided(build_colorizer(56, width=0.25))
  rng = np.random.default_rng(0)
  for architecture in GUIDED_ARCHITECTURES:
    model = build_guided_colorizer(56, width=0.25, architecture=architecture)
    assert is_guided(model) and model_image_size(model) == 56
    assert model.output.shape[1:] == (56, 56, 2)
    x = {L_INPUT: rng.uniform(0, 100, (2, 56, 56, 1)).astype(np.float32),
         EMBEDDING_INPUT: rng.normal(size=(2, 1536)).astype(np.float32),
         HINTS_INPUT: np.stack([guidance.no_hints(56)] * 2),
         PALETTE_INPUT: np.stack([guidance.NO_PALETTE] * 2)}
    task.compile_model(model, 1e-3)
    model.train_on_batch(x, rng.uniform(-0.5, 0.5, (2, 56, 56, 2)).astype(np.float32))
    path = str(tmp_path / f"{architecture}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert is_guided(loaded)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
