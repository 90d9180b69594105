"""Fault tolerance: a training process killed with SIGKILL after its first checkpoint, then the
same command run again, finishes the planned steps without starting over."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests import trainer_records
from trainer import artifacts

pytestmark = pytest.mark.slow   # training, killed and resumed

EPOCHS, STEPS = 3, 40


def command(records, job):
  return [sys.executable, "-m", "trainer.task", f"--records_dir={records}", f"--job_dir={job}",
          f"--epochs={EPOCHS}", f"--steps_per_epoch={STEPS}", "--batch_size=8",
          "--learning_rate=0.001", "--width=0.25", "--image_size=56", "--verbose=0"]


def test_kill_9_after_first_checkpoint_then_rerun_resumes(tmp_path):
  records, job = str(tmp_path / "records"), str(tmp_path / "job")
  trainer_records.write_records(records, {"train": 48, "val": 8}, shards=2)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("AIP_CHECKPOINT_DIR", None)
  env.pop("AIP_MODEL_DIR", None)
  marker = f"{job}/checkpoints/backup/training_metadata.json"

  first = subprocess.Popen(command(records, job), env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
  try:
    deadline = time.time() + 240
    while not os.path.exists(marker):
      assert first.poll() is None, first.stderr.read().decode()[-3000:]
      assert time.time() < deadline, "no checkpoint within 240 s"
      time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
  finally:
    first.kill()
    first.wait()
  assert first.returncode == -signal.SIGKILL
  with open(marker) as f:
    resumed_from = json.load(f)["epoch"]
  assert 1 <= resumed_from < EPOCHS, "the first run must die mid-training"
  assert not os.path.exists(f"{job}/model/colorizer.keras")

  second = subprocess.run(command(records, job), env=env, capture_output=True, timeout=300)
  assert second.returncode == 0, second.stderr.decode()[-3000:]

  epochs = json.loads(artifacts.read_text(f"{job}/history.json"))["epochs"]
  assert [e["epoch"] for e in epochs] == list(range(EPOCHS))
  by_first = [e["epoch"] for e in epochs if e["pid"] == first.pid]
  by_second = [e["epoch"] for e in epochs if e["pid"] != first.pid]
  assert by_first == list(range(resumed_from))             # kept, not redone
  assert by_second == list(range(resumed_from, EPOCHS))    # only the rest was trained
  model, _ = artifacts.load_trained(job)
  assert int(model.optimizer.iterations.numpy()) == EPOCHS * STEPS   # restored, not restarted
