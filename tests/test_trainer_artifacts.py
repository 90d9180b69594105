"""The trainer <-> export contract: where the model and its description (embedder.json,
rendering.json) go, and reading them back, old jobs included."""
import json

import numpy as np
import pytest

from koala.embedder import EmbedderInfo
from koala.records_manifest import RecordsManifest
from trainer import artifacts
from trainer.model import EMBEDDING_INPUT, L_INPUT, build_colorizer

# The embedder of a manifest from before its section held the seed (then in "options" only).
MANIFEST = RecordsManifest.from_dict({
    "embedder": {"name": "inception_resnet_v2", "weights": "random",
                 "identity": "inception_resnet_v2:random-seed3:0123456789abcdef",
                 "random_weights": True, "warning": "RANDOM"},
    "options": {"embedder_seed": 3, "input": "x"},
})


def test_dirs_follow_vertex_env(monkeypatch):
  for name in (artifacts.AIP_MODEL_DIR, artifacts.AIP_CHECKPOINT_DIR,
               artifacts.AIP_TENSORBOARD_LOG_DIR):
    monkeypatch.delenv(name, raising=False)
  assert artifacts.model_dir("gs://b/job/") == "gs://b/job/model"
  assert artifacts.checkpoint_dir("/j") == "/j/checkpoints"
  assert artifacts.tensorboard_dir("/j") == "/j/logs"
  monkeypatch.setenv(artifacts.AIP_MODEL_DIR, "gs://b/vertex/model/")
  monkeypatch.setenv(artifacts.AIP_CHECKPOINT_DIR, "gs://b/vertex/ckpt")
  monkeypatch.setenv(artifacts.AIP_TENSORBOARD_LOG_DIR, "gs://b/vertex/tb")
  assert artifacts.model_dir("/j") == "gs://b/vertex/model"
  assert artifacts.checkpoint_dir("/j") == "gs://b/vertex/ckpt"
  assert artifacts.tensorboard_dir("/j") == "gs://b/vertex/tb"


def test_the_records_embedder_from_the_manifest():
  info = artifacts.records_embedder(MANIFEST)
  assert info == EmbedderInfo(name="inception_resnet_v2", weights="random",
                              identity="inception_resnet_v2:random-seed3:0123456789abcdef",
                              random_weights=True, embedder_seed=3, warning="RANDOM")
  with pytest.raises(ValueError, match="identity"):
    artifacts.records_embedder(RecordsManifest.from_dict(
        {"embedder": {"name": "x", "weights": "y", "random_weights": False}}))
  with pytest.raises(ValueError, match="no embedder"):
    artifacts.records_embedder(RecordsManifest())


@pytest.mark.parametrize("job_dir", ["local", "ram://koala-artifacts-job"])
def test_save_and_load_trained_round_trip(tmp_path, monkeypatch, job_dir):
  """Local and a non-local filesystem (tf.io.gfile's ram://, standing in for gs://)."""
  monkeypatch.delenv(artifacts.AIP_MODEL_DIR, raising=False)
  job_dir = str(tmp_path / "job") if job_dir == "local" else job_dir
  model = build_colorizer(width=1 / 16)
  model.compile("adam", "mse")
  info = artifacts.TrainedModelInfo(artifacts.records_embedder(MANIFEST), "manga-v1")
  path = artifacts.save_trained(model, info, artifacts.model_dir(job_dir))
  assert path == f"{job_dir}/model/colorizer.keras"
  assert json.loads(artifacts.read_text(f"{job_dir}/model/embedder.json")) == {
      "name": "inception_resnet_v2", "weights": "random", "random_weights": True,
      "identity": "inception_resnet_v2:random-seed3:0123456789abcdef", "embedder_seed": 3,
      "warning": "RANDOM"}
  assert json.loads(artifacts.read_text(f"{job_dir}/model/rendering.json")) == {
      "rendering": "manga-v1", "composition": "manga"}

  loaded, loaded_info = artifacts.load_trained(job_dir)
  assert loaded_info == info
  inputs = {L_INPUT: np.full((1, 224, 224, 1), 50.0, np.float32),
            EMBEDDING_INPUT: np.ones((1, 1536), np.float32)}
  np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))


def test_load_trained_honours_aip_model_dir_and_says_what_is_missing(tmp_path, monkeypatch):
  monkeypatch.setenv(artifacts.AIP_MODEL_DIR, str(tmp_path / "vertex"))
  with pytest.raises(FileNotFoundError, match="vertex/colorizer.keras"):
    artifacts.load_trained(str(tmp_path / "job"))


def test_a_job_from_before_rendering_json_reads_as_gray(tmp_path, monkeypatch):
  """An older job: embedder.json as the first trainers wrote it (no warning, a key since
  dropped), and no rendering.json."""
  monkeypatch.delenv(artifacts.AIP_MODEL_DIR, raising=False)
  model_dir = tmp_path / "job" / "model"
  model_dir.mkdir(parents=True)
  (model_dir / artifacts.EMBEDDER_FILENAME).write_text(json.dumps({
      "name": "inception_resnet_v2", "weights": "imagenet", "identity": "keras:abc",
      "random_weights": False, "embedder_seed": None, "from_the_past": 1}))
  info = artifacts.read_trained_info(str(tmp_path / "job"))
  assert info.rendering == "gray" and info.composition == "keep_l"
  assert info.embedder == EmbedderInfo(name="inception_resnet_v2", weights="imagenet",
                                       identity="keras:abc", random_weights=False)
  assert info.embedder.to_dict() == {"name": "inception_resnet_v2", "weights": "imagenet",
                                     "identity": "keras:abc", "random_weights": False,
                                     "embedder_seed": None}
