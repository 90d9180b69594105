"""Run in a subprocess by tests/test_serving_hostile.py: one .cbz reader (the client, the
in-process batch_colorize, or the Streamlit page) on a normal two-page .cbz, then on a zip bomb,
printing the process's peak RSS after each and what the reader said about the bomb, as JSON.

  python -m tests.bomb_probe {client,batch,streamlit} NORMAL.cbz BOMB.cbz WORKDIR TARGET

TARGET is the server URL (client, streamlit) or the SavedModel base path (batch). The peak RSS
is the kernel's high-water mark (VmHWM), so the second figure covers everything the bomb cost.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys


def peak_mib() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024.0
  raise RuntimeError("no VmHWM in /proc/self/status")


def run_client(cbz: str, out: str, server: str) -> str:
  from serving import client
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    code = client.main([cbz, f"--server={server}", f"--output_dir={out}", "--no_progress"])
  return f"exit {code}\n{err.getvalue()}"


def run_batch(cbz: str, out: str, model: str) -> str:
  import shutil
  from serving import inference
  folder = out + "_in"
  os.makedirs(folder)
  shutil.copy(cbz, folder)
  report = inference.batch_colorize(model, folder, out, progress=False)
  return json.dumps({"done": report.done, "failed": report.failed})


def run_streamlit(cbz: str, out: str, server: str) -> str:
  from streamlit.testing.v1 import AppTest
  from tests import serving_support as support
  for name in ("KOALA_MODEL_PATH", "KOALA_MODELS_ROOT", "KOALA_MODEL_NAME"):
    os.environ.pop(name, None)
  os.environ["KOALA_SERVER"] = server          # the page's operator lists the server
  at = AppTest.from_file(f"{support.ROOT}/serving/streamlit_app.py", default_timeout=300)
  at.run()
  with open(cbz, "rb") as f:
    at.file_uploader(key="uploads").set_value(
        [(os.path.basename(cbz), f.read(), "application/zip")]).run()
  at.button(key="colorize").click().run()
  if at.exception:
    return f"exception: {at.exception}"
  return json.dumps({"errors": [e.value for e in at.error],
                     "downloads": [b.label for b in at.download_button]})


def main(argv: list[str]) -> int:
  kind, normal, bomb, work, target = argv
  run = {"client": run_client, "batch": run_batch, "streamlit": run_streamlit}[kind]
  normal_said = run(normal, os.path.join(work, "normal"), target)
  normal_peak = peak_mib()
  bomb_said = run(bomb, os.path.join(work, "bomb"), target)
  print(json.dumps({"normal_peak_mib": normal_peak, "bomb_peak_mib": peak_mib(),
                    "normal": normal_said, "bomb": bomb_said}))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
