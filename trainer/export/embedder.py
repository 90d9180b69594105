"""The embedder inside the export: exactly the one that made the training records.

Why it is inside: the colorizer needs the Inception-ResNet-v2 embedding of the very page it
colours, and TF Serving runs one SavedModel per request. The export rebuilds the embedder named
in the job's embedder.json (name, weights, seed) and refuses to export if its identity (which
fingerprints the weights) differs from the one the records recorded. Keras embedders and TF-Hub
/ SavedModel embedders (`hub:<path>`) both work; TF-Hub modules are loaded with
`tf.saved_model.load`, because `tensorflow_hub.KerasLayer` does not work with Keras 3.
"""
from __future__ import annotations

import tensorflow as tf

from koala import embedder as embedder_lib
from trainer.export import ExportError


class Embed(tf.Module):
  """The embedder as a callable on (N, 299, 299, 3) float32 gray in [0, 1] -> (N, 1536)."""

  def __init__(self, keras_model=None, hub_module=None):
    super().__init__(name="embedder")
    self.keras_model = keras_model
    self.hub_module = hub_module

  def __call__(self, unit):
    if self.keras_model is not None:
      return self.keras_model(unit * 2.0 - 1.0, training=False)
    out = self.hub_module(unit)
    if isinstance(out, dict):
      out = next(iter(out.values()))
    return out


def rebuild_embedder(info: embedder_lib.EmbedderInfo) -> tuple[Embed, str]:
  """The embedder named in embedder.json, checked against the identity recorded there."""
  name = info.name or embedder_lib.KERAS_NAME
  if name.startswith(embedder_lib.HUB_PREFIX):
    handle = name[len(embedder_lib.HUB_PREFIX):]
    try:
      import tensorflow_hub as hub   # hub.load is tf.saved_model.load plus handle resolution
      module = hub.load(handle)
    except Exception as e:
      raise ExportError(f"could not load the hub embedder {handle!r}: {e}") from None
    # The same fingerprint as koala.embedder's, so identities from the pipeline compare equal.
    fingerprint = embedder_lib.weights_fingerprint(
        v.numpy() for v in getattr(module, "variables", []))
    identity = f"hub:{handle}:{fingerprint}"
    if not callable(module):
      module = module.signatures["serving_default"]
    embed = Embed(hub_module=module)
  else:
    seed = embedder_lib.DEFAULT_SEED if info.embedder_seed is None else int(info.embedder_seed)
    try:
      loaded = embedder_lib.load_embedder(name, info.weights or embedder_lib.IMAGENET, seed)
    except embedder_lib.EmbedderError as e:
      raise ExportError(str(e)) from None
    identity = loaded.identity
    embed = Embed(keras_model=loaded.keras_model)
  expected = info.identity
  if expected and expected != identity:
    raise ExportError(
        f"the embedder rebuilt for export ({identity}) is not the one that made the training "
        f"records ({expected}); pass the same weights file or seed the records were made with")
  return embed, identity
