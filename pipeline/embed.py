"""Batched embedding inside Beam: a RunInference model handler for `koala.embedder`.

RunInference loads the model once per worker process and shares it between the worker's
threads; BatchElements (configured through `batch_elements_kwargs`) groups images into batches.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from koala import embedder as koala_embedder


class EmbedderModelHandler(ModelHandler[np.ndarray, PredictionResult, koala_embedder.Embedder]):
  """(299, 299) uint8 neutral-gray images in, 1536-d embeddings out.

  Each PredictionResult's `model_id` is the embedder's identity, so that every record (and the
  manifest) says exactly which weights made it.
  """

  def __init__(self, embedder: str = koala_embedder.KERAS_NAME,
               weights: str = koala_embedder.IMAGENET, seed: int = koala_embedder.DEFAULT_SEED,
               min_batch_size: int = 16, max_batch_size: int = 16):
    super().__init__()
    self._embedder = embedder
    self._weights = weights
    self._seed = seed
    self._batch_kwargs = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

  def load_model(self) -> koala_embedder.Embedder:
    return koala_embedder.load_embedder(self._embedder, self._weights, self._seed)

  def run_inference(self, batch: Sequence[np.ndarray], model: koala_embedder.Embedder,
                    inference_args: Optional[dict[str, Any]] = None
                    ) -> Iterable[PredictionResult]:
    gray = np.stack(batch)
    vectors = model.embed(np.repeat(gray[..., None], 3, axis=-1))
    # The input is dropped from the result: the caller keeps what it needs under its key.
    return [PredictionResult(None, v, model.identity) for v in vectors]

  def batch_elements_kwargs(self):
    return self._batch_kwargs

  def get_metrics_namespace(self) -> str:
    return "koala_embedder"
