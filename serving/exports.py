"""An exported SavedModel on disk, as everything that runs one finds, loads and reads it: the
in-process API (serving.inference), the Streamlit page and the batch job (serving.beam_colorize).

Why here: TF Serving serves the highest numeric version folder under a base path, and every
tool that runs an export locally must pick the same one, or a page coloured by the batch job
would differ from the one the server colours. A graph's refusal (a truncated page, a bad hint
image) is read the same way everywhere too, so a rejected page gives the same reason in the
batch job's rejected.jsonl as from batch_colorize.
"""
from __future__ import annotations

import functools
import os


def _local_children(path: str) -> list[str]:
  return os.listdir(path) if os.path.isdir(path) else []


def resolve_version_dir(model_path: str, *, exists=os.path.exists, children=_local_children,
                        join=os.path.join) -> str:
  """A version folder, or the highest numeric version under a base path. `exists`, `children`
  (names in a folder) and `join` default to the local disk; the batch job passes Beam's file
  system's, so gs:// exports resolve by the same rule."""
  if exists(join(model_path, "saved_model.pb")):
    return model_path
  versions = sorted(int(n) for n in children(model_path)
                    if n.isdigit() and exists(join(model_path, n, "saved_model.pb")))
  if not versions:
    raise FileNotFoundError(f"no SavedModel at {model_path}: expected saved_model.pb there or in "
                            "numbered version folders (python -m trainer.export writes them)")
  return join(model_path, str(versions[-1]))


def load_model(model_path: str):
  """The loaded SavedModel: its .signatures are TF Serving's. Cached by the version folder's
  real path, not by the string given: `models/koala`, `./models/koala/`, `models/koala/1` and a
  symlink to it are one model, loaded once (a cache on the raw string loaded one model once
  per spelling, each load seconds and hundreds of MB). A new version under a base path is
  picked up on the next call, as TF Serving does."""
  return _load_version(os.path.realpath(resolve_version_dir(model_path)))


@functools.lru_cache(maxsize=2)
def _load_version(version_dir: str):
  import tensorflow as tf
  return tf.saved_model.load(version_dir)


load_model.cache_clear = _load_version.cache_clear   # what callers (bench/) have always called


def refusal_reason(e) -> str:
  """The useful line of a graph error (the assertion text or the decoder's complaint)."""
  lines = [l.strip() for l in e.message.splitlines() if l.strip()]
  for l in lines:
    if l.startswith("assertion failed") or "Invalid" in l or "corrupt" in l.lower():
      return l.replace("assertion failed: [", "").replace("] [", " ")[:400]
  return lines[-1][:400] if lines else str(e)
