"""An input tree is read as it is: a symbolic link that leads outside it is not followed.

Why in koala/: the records pipeline (pipeline.run) and everything that colours a folder (the
client, batch_colorize, the Streamlit page, the Beam batch job) read input trees that someone
else may have filled, so a shared folder cannot make either read other files of the host; the
rule is one function, and the two layers meet only here.
"""
from __future__ import annotations

import os


def outside_root(path: str, root: str) -> str | None:
  """Why a local file found under `root` is not read (a symbolic link that leads outside the
  root, or through one), or None."""
  target, real_root = os.path.realpath(path), os.path.realpath(root)
  if target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep):
    return None
  return (f"a symbolic link to {target}, outside the input folder {root}: skipped (an input "
          "tree is read as it is, never through links that leave it)")
