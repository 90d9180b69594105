"""Records for the trainer's benchmarks, made by the real pipeline from ../shared/data, in place.

The images are never copied: a temporary list of the split's files (pipeline.run
--input_list) gives the pipeline one split, read in place, and the records go to a work folder
(default /tmp/koala_bench) where the input and quality benchmarks share them, built once per
(split, limit). The embedder has random weights (offline machine): the records' embeddings
carry no ImageNet semantics, which the benchmarks that use them say in their output.
"""
from __future__ import annotations

import os
import tempfile
import time

from bench import common
from koala import records_manifest, schema

DEFAULT_WORK_DIR = os.environ.get("KOALA_BENCH_WORK", "/tmp/koala_bench")
COLOUR_FOLDERS = ("color/", "photos/")   # manga/ is black and white: the pipeline skips it
# Held out of train.txt for validation. The data's own lists split by the first hex digit of the
# content hash; the pipeline's split draws from a salted hash (koala.schema.split_for_hash), so the
# pipeline's usual fraction holds out ~10% of train.txt (it took 0.325 before the salt).
TRAIN_VAL_FRACTION = 0.1


def build_records(split: str, limit: int | None = None, val_fraction: float = 0.0,
                  test_fraction: float = 0.0, work_dir: str = DEFAULT_WORK_DIR,
                  pipeline_args: tuple = (), sources: tuple = (),
                  exclude: tuple = ()) -> tuple[str, records_manifest.RecordsManifest]:
  """-> (records_dir, manifest) of ../shared/data/<split>.txt's colour images (first `limit`).

  The fractions go to the pipeline (by content hash): the quality benchmark holds out 10% of
  train.txt for validation, and puts all of eval.txt in the records' test split. `sources` keeps
  only the files under those folders (e.g. "color/lllyasviel__style2paints"), `exclude` drops
  them: how a whole source is held out of training. `split` may be "train+eval".
  """
  files = [f for part in split.split("+") for sub in COLOUR_FOLDERS
           for f in common.split_files(part, sub)]
  root = common.shared_data()
  under = lambda f, folders: any(os.path.relpath(f, root).startswith(d.rstrip("/") + "/")
                                 for d in folders)
  files = [f for f in files if (not sources or under(f, sources)) and not under(f, exclude)]
  files = files[:limit]
  tag = "".join(f"_only-{d.split('/')[-1]}" for d in sources) + "".join(
      f"_no-{d.split('/')[-1]}" for d in exclude)
  out = os.path.join(work_dir, f"records_{split}_{limit or 'all'}_v{val_fraction}_t{test_fraction}"
                               f"{tag}")
  manifest = records_manifest.read(out) if os.path.isdir(out) else None
  if (manifest is not None and manifest.counts.inputs == len(files)
      and manifest.split is not None and manifest.split.salt == schema.DEFAULT_SPLIT_SALT):
    print(f"reusing {out} ({manifest.counts.written} records)")
    return out, manifest
  from pipeline import run as pipeline_run
  with tempfile.TemporaryDirectory(prefix="koala-bench-list-") as tmp:
    listed = os.path.join(tmp, "inputs.txt")
    with open(listed, "w") as f:
      f.write("".join(path + "\n" for path in files))
    start = time.perf_counter()
    pipeline_run.run([f"--input_list={listed}", f"--output_dir={out}", "--embedder_weights=random",
                      f"--val_fraction={val_fraction}", f"--test_fraction={test_fraction}",
                      *pipeline_args])
    print(f"pipeline: {len(files)} images of {split} -> {out} in "
          f"{time.perf_counter() - start:.0f} s (embedder weights: random)")
  return out, records_manifest.read(out)
