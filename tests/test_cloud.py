"""The Google Cloud path, as far as this offline machine allows: the pipeline reading from and
writing to gs:// on a local Cloud Storage emulator, and the Dataflow job graph built without
submitting it.

Which libraries reach the emulator: Beam's GCS file system and google-cloud-storage do (they
honour STORAGE_EMULATOR_HOST). TensorFlow's built-in GCS file system (tf.io.gfile, tf.data on
gs://) has a fixed Google endpoint and no emulator override, so the trainer's gs:// job dirs are
exercised on real GCS only; see docs/cloud.md.
"""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from koala import schema
from pipeline import run as pipeline_run
from tests import corpus, storage
from tests.corpus import tiny_hub_module
from tests.serving_support import free_port

pytestmark = pytest.mark.slow   # a Cloud Storage emulator and Beam runs

BUCKET = "koala-test"


@pytest.fixture(scope="module")
def emulator():
  from gcp_storage_emulator.server import create_server
  port = free_port()
  server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
  server.start()
  old = os.environ.get("STORAGE_EMULATOR_HOST")
  os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
  try:
    yield storage.client()
  finally:
    server.stop()
    if old is None:
      del os.environ["STORAGE_EMULATOR_HOST"]
    else:
      os.environ["STORAGE_EMULATOR_HOST"] = old


@pytest.fixture(scope="module")
def gcs_input(emulator, tmp_path_factory):
  local = tmp_path_factory.mktemp("gcs_in")
  for i in range(5):
    Image.fromarray(corpus.colour_scene(200 + i, 120, 160)).save(local / f"page_{i}.png")
  (local / "nested").mkdir()
  Image.fromarray(corpus.colour_scene(300, 100, 100)).save(local / "nested" / "deep.jpg")
  (local / "nested" / "broken.png").write_bytes(b"not a png")
  storage.upload_dir(str(local), f"gs://{BUCKET}/input", emulator)
  return f"gs://{BUCKET}/input"


@pytest.fixture(scope="module")
def hub_module(tmp_path_factory):
  return tiny_hub_module(str(tmp_path_factory.mktemp("hub") / "module"))


def test_pipeline_reads_and_writes_gs_on_the_emulator(emulator, gcs_input, hub_module, tmp_path):
  out = f"gs://{BUCKET}/records"
  pipeline_run.run([f"--input={gcs_input}", f"--output_dir={out}", f"--embedder=hub:{hub_module}",
                    "--no_auth", "--num_shards=1"])
  local = tmp_path / "records"
  files = storage.download_dir(out, str(local), emulator)
  manifest = json.loads((local / schema.MANIFEST).read_text())
  counts = manifest["counts"]
  assert counts["inputs"] == 7 and counts["rejected"] == 1
  assert sum(counts["written"].values()) == 6
  rejected = [json.loads(l) for l in (local / schema.REJECTED).read_text().splitlines()]
  assert rejected[0]["path"] == f"{gcs_input}/nested/broken.png"
  shards = sorted(glob.glob(schema.shard_pattern(str(local), "*")))
  assert shards and all(f in files for f in shards)
  records = [schema.decode_example(r.numpy()) for r in tf.data.TFRecordDataset(shards)]
  assert len(records) == 6
  assert all(r.source_path.startswith(f"{gcs_input}/") for r in records)
  assert all(r.l.shape == schema.L_SHAPE and np.abs(r.ab).max() > 5 for r in records)


def test_dataflow_job_graph_is_built_without_submitting(emulator, gcs_input, tmp_path):
  image = "us-central1-docker.pkg.dev/koala-test/koala/pipeline-worker:0.1.0"
  result = pipeline_run.run([
      f"--input={gcs_input}", f"--output_dir=gs://{BUCKET}/df_records",
      "--runner=DataflowRunner", "--project=koala-test", "--region=us-central1",
      f"--temp_location=gs://{BUCKET}/tmp", f"--sdk_container_image={image}",
      "--embedder_weights=random", "--dry_run=True", "--no_auth"])
  assert_dataflow_job(result, image, (
      "MatchFiles", "HashFiles", "GroupByHash", "DropDuplicates", "Prepare", "Embed",
      "ToExample", "Write_train", "Write_val", "Write_test", "WriteRejected", "WriteManifest"))


def assert_dataflow_job(result, image: str, steps) -> None:
  """A Dataflow dry run's job: a batch job with these steps, every environment the worker
  image (shared with tests/test_colorize.py)."""
  proto = result.job.proto_pipeline
  names = {t.unique_name.split("/")[0] for t in proto.components.transforms.values()}
  assert set(steps) <= names, set(steps) - names
  envs = list(proto.components.environments.values())
  assert envs and all(e.urn == "beam:env:docker:v1" for e in envs)
  assert any(image.encode() in e.payload for e in envs)
  assert json.loads(result.job.json())["type"] == "JOB_TYPE_BATCH"
