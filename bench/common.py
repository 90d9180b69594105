"""Helpers shared by the benchmarks: where the real data is, and a machine description."""
from __future__ import annotations

import os
import platform
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("KOALA_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))


def shared_data(sub: str = "") -> str:
  """The real-image folder (../shared/data); exits cleanly with a message where it is absent."""
  path = os.path.normpath(os.path.join(SHARED_DATA, sub))
  if not os.path.isdir(path):
    print(f"SKIP: {path} is absent (it exists only on the project's development machines); "
          "set KOALA_SHARED_DATA to a folder of images to run this benchmark.")
    sys.exit(0)
  return path


def split_files(split: str, sub: str = "") -> list[str]:
  """Absolute paths of the files listed in ../shared/data/<split>.txt (under `sub` if given)."""
  root = shared_data()
  with open(os.path.join(root, f"{split}.txt")) as f:
    names = [line.strip() for line in f if line.strip()]
  return [os.path.join(root, n) for n in names if n.startswith(sub)]


def stage_files(paths: list[str], folder: str) -> str:
  """A folder (outside the repository) holding the given real files under numbered names, as
  HARD links: the very files, read in place, never copied. The tools skip symbolic links that
  lead out of their input folder (koala.input_tree), so these benchmarks cannot use those. Where
  the folder is on another file system than the data, the file is copied there, outside the
  repository, and removed with the folder."""
  import shutil
  os.makedirs(folder, exist_ok=True)
  for i, path in enumerate(paths):
    target = os.path.join(folder, f"{i:05d}_{os.path.basename(path)}")
    try:
      os.link(path, target)
    except OSError:
      shutil.copyfile(path, target)
  return folder


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"
