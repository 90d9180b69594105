"""The Beam batch job's model: an export's signature inside RunInference.

Why the export itself: `serving_default` (image_bytes -> png_bytes), or with guidance
`colorize_guided`, is the very graph TF Serving runs, so each page is the same PNG, byte for
byte, that serving.client gets from the same export. RunInference loads it once per worker
process (shared by the process's threads) and feeds it batches; a batch the model refuses (one
truncated page, or hint image) is retried page by page, so only the bad page is rejected.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Optional, Sequence

from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from serving import exports
from serving.archives import local_path
from serving.beam_pages import Refused, read_file
from trainer.export import signatures


def copy_folder(remote: str, local: str) -> None:
  """Every file below `remote` (gs://, or the Cloud Storage emulator in tests, which
  TensorFlow's own GCS file system cannot reach) into `local`, by Beam's file system; an object
  whose name would escape `local` refuses the copy before anything is written
  (serving.archives.local_path)."""
  found = [(m.path, local_path(local, m.path[len(remote):].lstrip("/"), m.path))
           for m in FileSystems.match([f"{remote}/**"])[0].metadata_list]
  for path, dest in found:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as f:
      f.write(read_file(path))


class SavedModelPageHandler(ModelHandler[Any, PredictionResult, Any]):
  """Image file bytes in, the export's `serving_default` PNG bytes out (or Refused); with
  signature `colorize_guided` (the job's guidance, `signatures.signature_for`): (image, hints,
  reference) bytes in, its PNG bytes out."""

  def __init__(self, version_dir: str, min_batch_size: int = 16, max_batch_size: int = 16,
               signature: str = signatures.SERVING_DEFAULT):
    super().__init__()
    self.version_dir = version_dir
    self.signature = signature
    self._batch_kwargs = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

  def load_model(self):
    if "://" not in self.version_dir:
      return exports.load_model(self.version_dir)
    import tensorflow as tf
    # A remote export is copied here first; loading reads every file it needs (variables are
    # restored into memory), so the copy is removed once the model is loaded.
    with tempfile.TemporaryDirectory(prefix="koala-model-") as local:
      copy_folder(self.version_dir, local)
      return tf.saved_model.load(local)

  def run_inference(self, batch: Sequence[bytes], model,
                    inference_args: Optional[dict[str, Any]] = None):
    return [PredictionResult(None, out, self.version_dir) for out in self._colorize(batch, model)]

  def _colorize(self, batch: Sequence[bytes], model) -> list:
    import tensorflow as tf
    try:
      fn = model.signatures[self.signature]
      if self.signature == signatures.SERVING_DEFAULT:
        out = fn(**{signatures.IMAGE_BYTES: tf.constant(list(batch))})
      else:   # (image, hints, reference) per page, b"" for none: one column each
        images, hints, references = (tf.constant(list(column)) for column in zip(*batch))
        out = fn(**{signatures.IMAGE_BYTES: images, signatures.HINTS_BYTES: hints,
                    signatures.REFERENCE_BYTES: references})
      return list(out[signatures.PNG_BYTES].numpy())
    except tf.errors.InvalidArgumentError as e:
      if len(batch) == 1:
        return [Refused(f"the model refused the image: {exports.refusal_reason(e)}")]
    # One page spoils its batch: redo the batch page by page, so only that page is refused.
    return [out for data in batch for out in self._colorize([data], model)]

  def batch_elements_kwargs(self):
    return self._batch_kwargs

  def get_metrics_namespace(self) -> str:
    return "koala_colorize_model"


