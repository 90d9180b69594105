"""The guided colorizer end to end on CPU: tf.data guidance (seeded, on the true colours), a small
guided model trained for real on a task where only hints can tell the colour, and
trainer.evaluate --hints on its records."""
import json
import os

import numpy as np
import pytest
import scipy.ndimage

from koala import colour, guidance
from tests import trainer_records
from trainer import artifacts, evaluate, task
from trainer import input as trainer_input
from trainer.model import HINTS_INPUT, L_INPUT, PALETTE_INPUT, build_colorizer

pytestmark = pytest.mark.slow   # training

SIZE = 56


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("hint_records"))
  trainer_records.write_hint_task_records(out, {"train": 96, "val": 16, "test": 8})
  return out


@pytest.fixture(scope="module")
def trained(records, tmp_path_factory):
  job = str(tmp_path_factory.mktemp("guided_job"))
  config = task.TrainConfig(records_dir=records, job_dir=job, learning_rate=1e-3, epochs=2,
                            batch_size=8, steps_per_epoch=100, seed=0, width=0.25,
                            image_size=SIZE, hints=True, verbose=0)
  model, _ = task.train(config)
  return job, model


def _batches(records, g, batch_size=8, size=SIZE):
  info = trainer_input.check_records(records)
  return list(trainer_input.make_dataset(info, "val", batch_size, training=False,
                                         image_size=size, guided=g))


def test_evaluation_guidance_is_seeded_per_example_and_lands_on_the_true_colour(records):
  g = trainer_input.eval_guidance(10, palette=True)
  first = _batches(records, g, batch_size=8)
  again = _batches(records, g, batch_size=5)    # other batches, same examples
  hints = np.concatenate([x[HINTS_INPUT].numpy() for x, _ in first])
  np.testing.assert_array_equal(hints, np.concatenate([x[HINTS_INPUT].numpy() for x, _ in again]))
  other_seed = _batches(records, trainer_input.eval_guidance(10, seed=1))
  assert not np.array_equal(hints, np.concatenate([x[HINTS_INPUT].numpy() for x, _ in other_seed]))
  for x, target in first:
    hint_ab, mask = guidance.decode_hints_np(x[HINTS_INPUT].numpy())
    assert mask.any(axis=(1, 2)).all()
    np.testing.assert_allclose(hint_ab[mask], target.numpy()[mask] * colour.AB_SCALE, atol=1.0)
    for l, ab, palette in zip(x[L_INPUT].numpy(), target.numpy(), x[PALETTE_INPUT].numpy()):
      np.testing.assert_allclose(palette, guidance.palette_np(l, ab * colour.AB_SCALE), atol=1e-5)


def test_training_guidance_varies_and_leaves_some_examples_without_hints(records):
  info = trainer_input.check_records(records)
  ds = trainer_input.make_dataset(info, "train", 8, training=True, image_size=SIZE, seed=0,
                                  guided=trainer_input.TRAINING_GUIDANCE)
  counts, flags = [], []
  for x, _ in ds.take(12):
    counts += list(x[HINTS_INPUT].numpy()[..., 2].sum(axis=(1, 2)))
    flags += list(x[PALETTE_INPUT].numpy()[:, -1])
  counts, flags = np.array(counts), np.array(flags)
  assert (counts == 0).any() and (counts > 0).mean() > 0.5
  assert 0 < flags.mean() < 1


def hinted_cells(l, hints_mask):
  """Pixels of the cells (ink-bounded regions) that hold a hint."""
  cells, _ = scipy.ndimage.label(l[..., 0] > (trainer_records.HINT_TASK_L
                                              + trainer_records.HINT_TASK_INK) / 2)
  ids = np.unique(cells[hints_mask & (cells > 0)])
  return np.isin(cells, ids)


def test_a_trained_guided_model_colours_a_hinted_region_closer_to_the_hint(records, trained):
  _, model = trained
  with_hints = _batches(records, trainer_input.eval_guidance(6))
  errors = {"hints": [], "none": []}
  for x, target in with_hints:
    region = np.stack([hinted_cells(l, m) for l, m in
                       zip(x[L_INPUT].numpy(), x[HINTS_INPUT].numpy()[..., 2] > 0)])
    for key in errors:
      feed = dict(x)
      if key == "none":
        feed[HINTS_INPUT] = np.zeros_like(x[HINTS_INPUT])
      pred = np.asarray(model.predict_on_batch(feed))
      errors[key].append(np.sum((pred - target.numpy()) ** 2, axis=-1)[region])
  err_hints, err_none = (float(np.mean(np.concatenate(v))) for v in errors.values())
  # Without hints no weights can know a cell's colour (four colours, one lightness); with them,
  # the hinted cells must come out closer to the truth, i.e. to their hint.
  print(f"hinted cells: MSE {err_hints:.5f} with hints, {err_none:.5f} without")
  assert err_hints < err_none, (err_hints, err_none)


def test_evaluate_hints_end_to_end(records, trained, capsys):
  job, _ = trained
  out = os.path.join(job, "eval_hints")
  results = evaluate.main([f"--records_dir={records}", f"--job_dir={job}", "--split=test",
                           "--hints=0,2,10", "--batch_size=4", "--samples=2", "--max_examples=4",
                           f"--output_dir={out}"])
  printed = capsys.readouterr().out
  assert "own palette" in printed and "Levin" in printed and "WARNING" in printed
  with open(os.path.join(out, "metrics.json")) as f:
    saved = json.load(f)
  assert saved["hint_counts"] == [0, 2, 10] and saved["examples"] == 4
  labels = [r["label"] for r in saved["rows"]]
  assert labels == ["0 hints", "2 hints", "10 hints", "own palette"]
  for row in saved["rows"]:
    assert set(row["predictors"]) == ({"model"} if row["palette"] else {"model", "levin"})
    for metric in ("psnr", "ssim", "auc", "colorfulness", "mse"):
      assert row["predictors"]["model"][metric] is not None
  assert set(saved["baselines"]) == {"gray", "mean_colour"}
  # Levin with no hints is gray; with hints it is better than gray on this flat-cell task.
  rows = {r["label"]: r["predictors"] for r in saved["rows"]}
  assert rows["0 hints"]["levin"]["mse"] == pytest.approx(saved["baselines"]["gray"]["mse"])
  assert rows["10 hints"]["levin"]["mse"] < saved["baselines"]["gray"]["mse"]
  for name in ("samples.png", "psnr_vs_hints.png"):
    assert os.path.getsize(os.path.join(out, name)) > 1000
  assert results["rows"] == saved["rows"]


def test_evaluate_hints_refuses_a_model_without_hints(records, tmp_path):
  job = str(tmp_path / "spec")
  info = trainer_input.check_records(records)
  artifacts.save_trained(build_colorizer(SIZE, width=0.25), artifacts.TrainedModelInfo(
      artifacts.records_embedder(info.manifest)), artifacts.model_dir(job))
  with pytest.raises(ValueError, match="guided model"):
    evaluate.main([f"--records_dir={records}", f"--job_dir={job}", "--hints=0,1"])
