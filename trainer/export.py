"""Export a trained colorizer as a TF Serving SavedModel that carries the whole page path.

  python -m trainer.export --job_dir=DIR --export_dir=models/koala [--version=N]

writes TF Serving's layout, models/koala/<version>/saved_model.pb + variables/ (+ assets.extra/
koala_export.json, provenance that TF Serving ignores). Version N defaults to one above the
highest already there, so exporting again rolls a running server forward. The version folder
is written under a temporary name and renamed, so a server polling the folder never loads a
half-written model.

Signatures:
  serving_default   image_bytes string [None] -> png_bytes string [None]. Image file bytes in
                    (PNG, JPEG, WebP, BMP, GIF; gray or colour; alpha on white), the coloured
                    page out as PNG at the input's own size. The `_bytes` suffixes make TF
                    Serving's REST API carry both as {"b64": ...}.
  colorize_tensors  l float32 [None, S, S, 1] (LAB L, 0..100) + embedding float32 [None, 1536]
                    -> ab float32 [None, S, S, 2] (LAB units, clamped), for users with their own
                    pre- and post-processing.
  colorize_guided   only when the job trained the guided model (trainer.task --hints):
                    image_bytes + hints_bytes + reference_bytes string [None] -> png_bytes.
                    hints_bytes: an RGBA image whose pixels with alpha > 0 are colour hints,
                    any size, stretched over the page; reference_bytes: any image, its palette
                    steers the colours; an empty string means none (serving/tf_guidance.py).
                    serving_default and colorize_tensors of a guided model run it unguided.

A job trained on manga records (pipeline.run --render=manga; model/rendering.json) composes its
pages as a colourist does (serving/tf_fill.py): flat colours under the page, which multiplies
them, so colour reaches the white paper and ink stays ink; the model's colour stops at the ink
lines, and in colorize_guided each dot fills its region in the colour picked (--gap_closing:
how far the lines grow to close gaps). A gray job keeps the page's own L (koala.colour.page_rgb,
one table gather).

Why the embedder is inside: the colorizer needs the Inception-ResNet-v2 embedding of the very
page it colours, and TF Serving runs one SavedModel per request. The export rebuilds exactly the
embedder that made the training records (embedder.json: name, weights, seed) and refuses to
export if its identity (which fingerprints the weights) differs. Keras embedders and TF-Hub /
SavedModel embedders (`hub:<path>`) both work; TF-Hub modules are loaded with
`tf.saved_model.load`, because `tensorflow_hub.KerasLayer` does not work with Keras 3.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import tensorflow as tf

from koala import embedder as embedder_lib
from koala import colour, guidance, images, schema
from koala.signatures import (COLORIZE_GUIDED, COLORIZE_TENSORS, HINTS_BYTES, IMAGE_BYTES,
                              PNG_BYTES, REFERENCE_BYTES, SERVING_DEFAULT)
from koala import regions
from serving import tf_fill, tf_guidance, tf_page
from trainer import artifacts, model as model_lib

# zlib level of the output PNG. 0 (stored) is lossless like every level and half the cost of
# level 1 on an A4 page, the largest cost after the networks (docs/benchmarks.md), at about 3x the
# bytes; --png_compression=1 trades ~0.1-0.2 s a page for the smaller file.
DEFAULT_PNG_COMPRESSION = 0
EXPORT_INFO = "koala_export.json"
MAX_GAP_CLOSING = 8        # fill pixels: wider closing swallows small regions whole

_LOG = logging.getLogger(__name__)


class ExportError(RuntimeError):
  """The export cannot be made; the message says why and what to do."""


class _Embed(tf.Module):
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


def rebuild_embedder(info: dict) -> _Embed:
  """The embedder named in embedder.json, checked against the identity recorded there."""
  name = info.get("name", embedder_lib.KERAS_NAME)
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
    embed = _Embed(hub_module=module)
  else:
    seed = info.get("embedder_seed")
    seed = embedder_lib.DEFAULT_SEED if seed is None else int(seed)
    try:
      loaded = embedder_lib.load_embedder(name, info.get("weights", embedder_lib.IMAGENET), seed)
    except embedder_lib.EmbedderError as e:
      raise ExportError(str(e)) from None
    identity = loaded.identity
    embed = _Embed(keras_model=loaded.keras_model)
  expected = info.get("identity")
  if expected and expected != identity:
    raise ExportError(
        f"the embedder rebuilt for export ({identity}) is not the one that made the training "
        f"records ({expected}); pass the same weights file or seed the records were made with")
  return embed, identity


class KoalaServing(tf.Module):
  """What the SavedModel holds: colorizer, embedder, the LAB -> sRGB table, and the two
  signatures. One page at a time inside tf.map_fn, because pages differ in size."""

  def __init__(self, colorizer, embed: _Embed, *, max_pixels: int, png_compression: int,
               composition: str = colour.COMPOSE_KEEP_L,
               gap_closing: int = regions.DEFAULT_CLOSING):
    super().__init__(name="koala")
    self.colorizer = colorizer
    self.embed = embed
    self.size = _colorizer_size(colorizer)
    self.max_pixels = int(max_pixels)
    self.png_compression = int(png_compression)
    self.composition = composition
    self.gap_closing = int(gap_closing)
    self.manga = composition == colour.COMPOSE_MANGA
    if self.manga:    # flat colours under the page (serving.tf_fill)
      self.colour_table = tf.Variable(colour.paper_colour_table(), trainable=False,
                                      name="paper_colour_table")
    elif composition == colour.COMPOSE_KEEP_L:
      self.colour_table = tf.Variable(tf_page.lab_rgb_table(), trainable=False,
                                      name="lab_rgb_table")
    else:
      raise ExportError(f"unknown composition {composition!r}; one of {colour.COMPOSITIONS}")
    # Each network is traced once, as a concrete function that both signatures call: tracing
    # Inception-ResNet-v2's ~800 Keras layers is the slow part of an export. autograph=False
    # throughout: the graph uses explicit tf.cond / tf.case, and autograph-converting Keras's
    # own call code tripled the export time.
    self.embed_fn = tf.function(embed.__call__, autograph=False).get_concrete_function(
        tf.TensorSpec([None, schema.EMBEDDER_SIZE, schema.EMBEDDER_SIZE, 3], tf.float32))
    l_spec = tf.TensorSpec([None, self.size, self.size, 1], tf.float32, name="l")
    embedding_spec = tf.TensorSpec([None, schema.EMBEDDING_DIM], tf.float32, name="embedding")
    self.guided = model_lib.is_guided(colorizer)
    if self.guided:
      # One trace of the guided network; the unguided entry points call it with no guidance.
      self.guided_fn = tf.function(self._guided_ab, autograph=False).get_concrete_function(
          l_spec, embedding_spec,
          tf.TensorSpec([None, self.size, self.size, tf_guidance.HINT_CHANNELS], tf.float32,
                        name="hints"),
          tf.TensorSpec([None, guidance.PALETTE_SIZE], tf.float32, name="palette"))
      self.serve_guided = tf.function(self._serve_guided, autograph=False, input_signature=[
          tf.TensorSpec([None], tf.string, name=IMAGE_BYTES),
          tf.TensorSpec([None], tf.string, name=HINTS_BYTES),
          tf.TensorSpec([None], tf.string, name=REFERENCE_BYTES)])
    self.colorize_fn = tf.function(self._ab, autograph=False).get_concrete_function(
        l_spec, embedding_spec)

  def _ab(self, l, embedding):
    if self.guided:
      n = tf.shape(l)[0]
      return self.guided_fn(
          l, embedding, tf.zeros([n, self.size, self.size, tf_guidance.HINT_CHANNELS]),
          tf.tile(tf.constant(guidance.NO_PALETTE, tf.float32)[None], [n, 1]))
    ab = self.colorizer({model_lib.L_INPUT: l, model_lib.EMBEDDING_INPUT: embedding},
                        training=False)
    return {"ab": _ab_units(ab)}

  def _guided_ab(self, l, embedding, hints, palette):
    ab = self.colorizer({model_lib.L_INPUT: l, model_lib.EMBEDDING_INPUT: embedding,
                         model_lib.HINTS_INPUT: hints, model_lib.PALETTE_INPUT: palette},
                        training=False)
    return {"ab": _ab_units(ab)}

  def _predict_ab(self, l, unit, page_hw):
    return self.colorize_fn(l, self.embed_fn(unit))["ab"][0]

  def _colour_box(self, gray, box, hints_rgba=None):
    """The job's composition of a page from the model's ab over its box."""
    if self.manga:
      return tf_fill.manga_colour_page(gray, box, self.colour_table, hints_rgba,
                                       closing=self.gap_closing)
    return tf_page.colour_page(gray, box, self.colour_table)

  def _page(self, data, predict_ab=None, colour_box=None):
    return tf_page.page_png(data, predict_ab or self._predict_ab, colour_box or self._colour_box,
                            size=self.size, embedder_size=schema.EMBEDDER_SIZE,
                            max_pixels=self.max_pixels, png_compression=self.png_compression)

  def _guided_page(self, args):
    data, hints, reference = args
    rgba = tf_guidance.hint_image(hints, self.max_pixels)

    def predict_ab(l, unit, page_hw):
      planes = tf_guidance.hint_planes(rgba, page_hw, self.size)
      palette = tf_guidance.palette(reference, self.max_pixels)
      return self.guided_fn(l, self.embed_fn(unit), planes[None], palette[None])["ab"][0]

    # A manga page fills each dot's region in the dot's colour (serving.tf_fill); a gray page
    # has only the model's colours.
    colour_box = (lambda gray, box: self._colour_box(gray, box, rgba)) if self.manga else None
    return self._page(data, predict_ab, colour_box)

  def _serve_guided(self, image_bytes, hints_bytes, reference_bytes):
    pngs = tf.map_fn(self._guided_page, (image_bytes, hints_bytes, reference_bytes),
                     fn_output_signature=tf.TensorSpec([], tf.string), parallel_iterations=4)
    return {PNG_BYTES: pngs}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)],
               autograph=False)
  def serve(self, image_bytes):
    pngs = tf.map_fn(self._page, image_bytes,
                     fn_output_signature=tf.TensorSpec([], tf.string), parallel_iterations=4)
    return {PNG_BYTES: pngs}


def _ab_units(ab_norm) -> tf.Tensor:
  """The model's ab / 128 -> LAB units, clamped to the table's range."""
  return tf.clip_by_value(tf.cast(ab_norm, tf.float32) * 128.0, -127.0, 127.0)


def _colorizer_size(colorizer) -> int:
  inputs = colorizer.input if isinstance(colorizer.input, dict) else None
  shape = (inputs[model_lib.L_INPUT] if inputs else colorizer.inputs[0]).shape
  if shape[1] != shape[2]:
    raise ExportError(f"the colorizer's L input must be square, got {shape}")
  return int(shape[1])


def next_version(export_dir: str) -> int:
  """One above the highest numeric version folder (TF Serving's convention), or 1."""
  if not tf.io.gfile.isdir(export_dir):
    return 1
  versions = [int(n.strip("/")) for n in tf.io.gfile.listdir(export_dir) if n.strip("/").isdigit()]
  return max(versions, default=0) + 1


def export(job_dir: str, export_dir: str, version: int | None = None, *,
           max_pixels: int = images.DEFAULT_MAX_PIXELS,
           png_compression: int = DEFAULT_PNG_COMPRESSION,
           gap_closing: int = regions.DEFAULT_CLOSING) -> str:
  """Writes <export_dir>/<version>/ and returns its path."""
  started = time.time()
  version = next_version(export_dir) if version is None else int(version)
  if version < 1:
    raise ExportError(f"--version must be a positive integer, got {version}")
  final = artifacts.join(export_dir, str(version))
  if tf.io.gfile.exists(final):
    raise ExportError(f"{final} exists already; TF Serving versions are immutable, pick another "
                      "--version or leave it out to take the next one")
  colorizer, info = artifacts.load_trained(job_dir)
  rendering = artifacts.load_rendering(job_dir)
  embed, identity = rebuild_embedder(info)
  _LOG.info("loaded the model and rebuilt the embedder in %.1f s", time.time() - started)
  if not 0 <= gap_closing <= MAX_GAP_CLOSING:
    raise ExportError(f"--gap_closing must be 0..{MAX_GAP_CLOSING} fill pixels, got {gap_closing}")
  module = KoalaServing(colorizer, embed, max_pixels=max_pixels, png_compression=png_compression,
                        composition=rendering["composition"], gap_closing=gap_closing)
  _LOG.info("built the LAB -> sRGB table at %.1f s", time.time() - started)
  signatures = {SERVING_DEFAULT: module.serve, COLORIZE_TENSORS: module.colorize_fn}
  if module.guided:
    signatures[COLORIZE_GUIDED] = module.serve_guided
  local = "://" not in export_dir
  target = artifacts.join(export_dir, f".tmp-{version}-{os.getpid()}") if local else final
  tf.io.gfile.makedirs(export_dir)
  tf.saved_model.save(module, target, signatures=signatures)
  artifacts.write_json(artifacts.join(target, "assets.extra", EXPORT_INFO), {
      "embedder": info, "embedder_identity": identity, "colorizer_size": module.size,
      "max_pixels": module.max_pixels, "png_compression": module.png_compression,
      "gap_closing": module.gap_closing if module.manga else None,
      "job_dir": job_dir, "signatures": sorted(signatures), "rendering": rendering})
  if local:
    os.rename(target, final)
  _LOG.info("exported %s in %.1f s", final, time.time() - started)
  return final


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--job_dir", required=True, help="the training job's directory (local or gs://)")
  p.add_argument("--export_dir", required=True, help="TF Serving's model base path, e.g. models/koala")
  p.add_argument("--version", type=int, default=None, help="default: one above the highest there")
  p.add_argument("--max_pixels", type=int, default=images.DEFAULT_MAX_PIXELS,
                 help="pages with more pixels are refused with a clear error (default %(default)s)")
  p.add_argument("--png_compression", type=int, default=DEFAULT_PNG_COMPRESSION, choices=range(-1, 10),
                 help="zlib level of the output PNG, lossless at any level: 0 is the fastest, 1 "
                      "about a third of the bytes for ~0.1-0.2 s more per A4 page, -1 = zlib's "
                      "default (default %(default)s)")
  p.add_argument("--gap_closing", type=int, default=regions.DEFAULT_CLOSING,
                 help="manga jobs: fill pixels the ink lines grow by before a dot's region is "
                      "found; closes gaps in the lines of about twice that (a fill pixel is 2 "
                      "page pixels, 3 on an A4 page); 0 closes none (default %(default)s)")
  args = p.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
  try:
    path = export(args.job_dir, args.export_dir, args.version, max_pixels=args.max_pixels,
                  png_compression=args.png_compression, gap_closing=args.gap_closing)
  except (ExportError, FileNotFoundError) as e:
    print(f"export failed: {e}", file=sys.stderr)
    return 2
  print(path)
  return 0


if __name__ == "__main__":
  sys.exit(main())
