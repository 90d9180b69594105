"""The Vertex AI CustomJob spec that trainer.submit builds and prints with --dry_run."""
import json
import subprocess
import sys

import pytest

from trainer import submit, task


def test_dry_run_prints_a_complete_spec_without_credentials():
  out = subprocess.run(
      [sys.executable, "-m", "trainer.submit", "--project=p", "--region=europe-west4",
       "--image_uri=europe-west4-docker.pkg.dev/p/koala/trainer:1", "--job_dir=gs://b/runs/1",
       "--records_dir=gs://b/records", "--preset=Koala_0001_50", "--accelerator_count=2",
       "--dry_run", "--steps_per_epoch=100"], capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  spec = json.loads(out.stdout)
  assert spec["base_output_dir"] == "gs://b/runs/1"
  (pool,) = spec["worker_pool_specs"]
  assert pool["replica_count"] == 1
  assert pool["machine_spec"] == {"machine_type": submit.DEFAULT_MACHINE,
                                  "accelerator_type": submit.DEFAULT_ACCELERATOR,
                                  "accelerator_count": 2}
  container = pool["container_spec"]
  assert container["image_uri"] == "europe-west4-docker.pkg.dev/p/koala/trainer:1"
  assert container["args"] == ["--records_dir=gs://b/records", "--job_dir=gs://b/runs/1",
                               "--preset=Koala_0001_50", "--distribute=mirrored",
                               "--steps_per_epoch=100"]


def test_container_args_are_accepted_by_the_trainer():
  spec = submit.build_spec(image_uri="i", job_dir="gs://b/j", records_dir="gs://b/r",
                           accelerator_type=None, extra_args=["--epochs=3"])
  args = spec["worker_pool_specs"][0]["container_spec"]["args"]
  assert "accelerator_type" not in spec["worker_pool_specs"][0]["machine_spec"]
  parsed = task.parse_args(args)
  assert parsed.epochs == 3 and parsed.job_dir == "gs://b/j" and parsed.records_dir == "gs://b/r"


def test_bad_specs_are_refused():
  with pytest.raises(ValueError, match="gs://"):
    submit.build_spec(image_uri="i", job_dir="/local", records_dir="gs://b/r")
  with pytest.raises(ValueError, match="unknown preset"):
    submit.build_spec(image_uri="i", job_dir="gs://b/j", records_dir="gs://b/r", preset="nope")
