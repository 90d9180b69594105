"""trainer.train.train_model, the original project's entry point: plain image folders in, (model,
history) out, with the pipeline's records cached under the job directory and rebuilt only when
inputs change."""
import os
import shutil

import numpy as np
import pytest

from pipeline import sample_data
from tests.corpus import tiny_hub_module
from trainer import artifacts
from trainer.train import train_model

pytestmark = pytest.mark.slow   # Beam runs and training

FAST_BEAM = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def folders(root):
  sample_data.generate(str(root / "all"), count=12, pages=0, photos=False, size=(96, 128))
  files = sorted(os.listdir(root / "all" / "colour"))
  out = {}
  for split, names in (("train", files[:7]), ("val", files[7:10]), ("test", files[10:])):
    os.makedirs(root / split)
    for name in names:
      shutil.copy(root / "all" / "colour" / name, root / split / name)
    out[split] = str(root / split)
  return out


def test_train_model_on_folders_caches_records_and_reruns_only_changed_inputs(tmp_path):
  dirs = folders(tmp_path)
  module = tiny_hub_module(str(tmp_path / "hub"))
  job = str(tmp_path / "job")
  kwargs = dict(job_dir=job, embedder=f"hub:{module}", pipeline_args=FAST_BEAM,
                width=0.125, image_size=32, verbose=0)

  model, history = train_model(dirs["train"], dirs["val"], dirs["test"], 1e-3, 2, 4,
                               "Koala_test", **kwargs)
  assert len(history["loss"]) == 2 and np.isfinite(history["val_loss"]).all()
  assert os.path.exists(f"{job}/evaluation/test/metrics.json")
  # The model returned is the one saved in the job, of the size the arguments asked for.
  from trainer.model import build_colorizer
  saved, info = artifacts.load_trained(job)
  assert [tuple(t.shape) for t in model.outputs] == [(None, 32, 32, 2)]
  assert model.count_params() == build_colorizer(image_size=32, width=0.125).count_params()
  assert len(model.get_weights()) == len(saved.get_weights())
  for ours, on_disk in zip(model.get_weights(), saved.get_weights()):
    np.testing.assert_array_equal(ours, on_disk)
  assert info.embedder.identity.startswith(f"hub:{module}")
  stamps = {s: os.path.getmtime(f"{job}/cache/runs/{s}/manifest.json") for s in dirs}

  # Same inputs: no pipeline run; the finished job is not retrained either.
  _, again = train_model(dirs["train"], dirs["val"], dirs["test"], 1e-3, 2, 4, "Koala_test",
                         **kwargs)
  assert again == history
  assert {s: os.path.getmtime(f"{job}/cache/runs/{s}/manifest.json") for s in dirs} == stamps

  # One more validation image: only the val folder is processed again.
  shutil.copy(os.path.join(dirs["train"], sorted(os.listdir(dirs["train"]))[0]),
              os.path.join(dirs["val"], "extra.png"))
  train_model(dirs["train"], dirs["val"], dirs["test"], 1e-3, 2, 4, "Koala_test", **kwargs)
  now = {s: os.path.getmtime(f"{job}/cache/runs/{s}/manifest.json") for s in dirs}
  assert now["train"] == stamps["train"] and now["test"] == stamps["test"]
  assert now["val"] > stamps["val"]
  assert len(os.listdir(f"{job}/cache/records/val")) >= 1


def test_without_val_folder_holds_out_a_tenth_of_train(tmp_path):
  dirs = folders(tmp_path)
  module = tiny_hub_module(str(tmp_path / "hub"))
  import json
  from trainer.train import prepare_records
  records = prepare_records({"train": dirs["train"], "val": None, "test": None},
                            str(tmp_path / "cache"), [f"--embedder=hub:{module}"], FAST_BEAM)
  with open(f"{records}/manifest.json") as f:
    written = json.load(f)["counts"]["written"]
  assert written["train"] + written["val"] == 7 and written["test"] == 0
