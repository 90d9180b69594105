"""What the SavedModel holds (`KoalaServing`): the colorizer, the embedder, the colour table,
and the signatures TF Serving offers.

Signatures (names in `trainer.export.signatures`):
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
                    steers the colours; an empty string means none (trainer/export/guidance.py).
                    serving_default and colorize_tensors of a guided model run it unguided.

A job trained on manga records (pipeline.run --render=manga; model/rendering.json) composes its
pages as a colourist does (trainer/export/fill.py): flat colours under the page, which
multiplies them, so colour reaches the white paper and ink stays ink; the model's colour stops
at the ink lines, and in colorize_guided each dot fills its region in the colour picked
(--gap_closing: how far the lines grow to close gaps). A gray job keeps the page's own L
(koala.colour.page_rgb, one table gather; trainer/export/page.py).
"""
from __future__ import annotations

import tensorflow as tf

from koala import colour, schema
from koala.guidance import NO_PALETTE, PALETTE_SIZE
from koala.regions import DEFAULT_CLOSING
from trainer import model as model_lib
from trainer.export import ExportError, fill, guidance, page
from trainer.export.embedder import Embed
from trainer.export.signatures import HINTS_BYTES, IMAGE_BYTES, PNG_BYTES, REFERENCE_BYTES


class KoalaServing(tf.Module):
  """What the SavedModel holds: colorizer, embedder, the LAB -> sRGB table, and the two
  signatures. One page at a time inside tf.map_fn, because pages differ in size."""

  def __init__(self, colorizer, embed: Embed, *, max_pixels: int, png_compression: int,
               composition: str = colour.COMPOSE_KEEP_L,
               gap_closing: int = DEFAULT_CLOSING):
    super().__init__(name="koala")
    self.colorizer = colorizer
    self.embed = embed
    self.size = _colorizer_size(colorizer)
    self.max_pixels = int(max_pixels)
    self.png_compression = int(png_compression)
    self.composition = composition
    self.gap_closing = int(gap_closing)
    self.manga = composition == colour.COMPOSE_MANGA
    if self.manga:    # flat colours under the page (trainer.export.fill)
      self.colour_table = tf.Variable(colour.paper_colour_table(), trainable=False,
                                      name="paper_colour_table")
    elif composition == colour.COMPOSE_KEEP_L:
      self.colour_table = tf.Variable(page.lab_rgb_table(), trainable=False,
                                      name="lab_rgb_table")
    else:
      raise ExportError(f"unknown composition {composition!r}; one of {colour.COMPOSITIONS}")
    # Each network is traced once, as a concrete function that both signatures call: tracing
    # Inception-ResNet-v2's ~800 Keras layers is the slow part of an export. autograph=False
    # throughout: the graph uses explicit tf.cond / tf.case, and autograph-converting Keras's
    # own call code tripled the export time.
    self.embed_fn = tf.function(embed.__call__, autograph=False).get_concrete_function(
        tf.TensorSpec([None, schema.EMBEDDER_SIZE, schema.EMBEDDER_SIZE, 3], tf.float32))
    # colorize_tensors takes and returns the model's own tensors, by the model's own names.
    l_spec = tf.TensorSpec([None, self.size, self.size, 1], tf.float32, name=model_lib.L_INPUT)
    embedding_spec = tf.TensorSpec([None, schema.EMBEDDING_DIM], tf.float32,
                                   name=model_lib.EMBEDDING_INPUT)
    self.guided = model_lib.is_guided(colorizer)
    if self.guided:
      # One trace of the guided network; the unguided entry points call it with no guidance.
      self.guided_fn = tf.function(self._guided_ab, autograph=False).get_concrete_function(
          l_spec, embedding_spec,
          tf.TensorSpec([None, self.size, self.size, guidance.HINT_CHANNELS], tf.float32,
                        name=model_lib.HINTS_INPUT),
          tf.TensorSpec([None, PALETTE_SIZE], tf.float32, name=model_lib.PALETTE_INPUT))
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
          l, embedding, tf.zeros([n, self.size, self.size, guidance.HINT_CHANNELS]),
          tf.tile(tf.constant(NO_PALETTE, tf.float32)[None], [n, 1]))
    ab = self.colorizer({model_lib.L_INPUT: l, model_lib.EMBEDDING_INPUT: embedding},
                        training=False)
    return {model_lib.AB_OUTPUT: _ab_units(ab)}

  def _guided_ab(self, l, embedding, hints, palette):
    ab = self.colorizer({model_lib.L_INPUT: l, model_lib.EMBEDDING_INPUT: embedding,
                         model_lib.HINTS_INPUT: hints, model_lib.PALETTE_INPUT: palette},
                        training=False)
    return {model_lib.AB_OUTPUT: _ab_units(ab)}

  def _predict_ab(self, l, unit, page_hw):
    return self.colorize_fn(l, self.embed_fn(unit))[model_lib.AB_OUTPUT][0]

  def _colour_box(self, gray, box, hints_rgba=None):
    """The job's composition of a page from the model's ab over its box."""
    if self.manga:
      return fill.manga_colour_page(gray, box, self.colour_table, hints_rgba,
                                    closing=self.gap_closing)
    return page.colour_page(gray, box, self.colour_table)

  def _page(self, data, predict_ab=None, colour_box=None):
    return page.page_png(data, predict_ab or self._predict_ab, colour_box or self._colour_box,
                         size=self.size, embedder_size=schema.EMBEDDER_SIZE,
                         max_pixels=self.max_pixels, png_compression=self.png_compression)

  def _guided_page(self, args):
    data, hints, reference = args
    rgba = guidance.hint_image(hints, self.max_pixels)

    def predict_ab(l, unit, page_hw):
      planes = guidance.hint_planes(rgba, page_hw, self.size)
      palette = guidance.palette(reference, self.max_pixels)
      ab = self.guided_fn(l, self.embed_fn(unit), planes[None], palette[None])
      return ab[model_lib.AB_OUTPUT][0]

    # A manga page fills each dot's region in the dot's colour (trainer.export.fill); a gray
    # page has only the model's colours.
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
