"""The Deep Koalarization colorizer (Baldassarre et al. 2017), layer for layer as docs/SPEC.md gives
it.

Pure Keras 3 (layers and `keras.ops`, no TensorFlow import), so that the same model builds on
the JAX backend for the GPU benchmark. Normalisation happens inside the model: it takes L in LAB
units [0, 100] and the raw 1536-d embedding, and predicts ab / 128 in [-1, 1] (tanh). The output
layer is float32 even under a mixed-precision policy.

    L (224x224x1) -> encoder -> 28x28x256 --+
    embedding (1536) -> repeat 28x28 -------+-> concat (1792) -> 1x1 conv 256 -> decoder -> ab
"""
from __future__ import annotations

import keras
from keras import layers

from koala import colour, guidance, schema

# The Keras input names, which are also the colorize_tensors signature's (a public interface)
# and are saved in every .keras file. L_INPUT is the L the model sees (a rendering's, or a gray
# image's own), not the records' `l` (koala.schema.L, always the colour image's own L).
L_INPUT = "l"
EMBEDDING_INPUT = "embedding"
HINTS_INPUT = "hints"
PALETTE_INPUT = "palette"
AB_OUTPUT = "ab"
FUSION_SIZE = schema.IMAGE_SIZE // 8   # 28

# (filters, stride) of the encoder's 3x3 convolutions.
ENCODER = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (256, 1))


def _conv(filters: int, name: str, strides: int = 1, kernel_size: int = 3,
          activation: str = "relu", **kwargs) -> layers.Conv2D:
  return layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                       activation=activation, name=name, **kwargs)


def build_colorizer(image_size: int = schema.IMAGE_SIZE,
                    embedding_dim: int = schema.EMBEDDING_DIM,
                    width: float = 1.0) -> keras.Model:
  """The colorizer; the defaults give docs/SPEC.md's full-size model (6,711,010 parameters).

  `width` scales every hidden layer's filter count (not the 2-channel output), so tests and
  smoke runs can train a narrow copy of the same architecture in seconds on a CPU; anything but
  1.0 is not the SPEC model.
  """
  if width <= 0:
    raise ValueError(f"width must be > 0, got {width}")
  w = lambda filters: max(1, int(round(filters * width)))
  l_in = keras.Input((image_size, image_size, 1), name=L_INPUT)
  emb_in = keras.Input((embedding_dim,), name=EMBEDDING_INPUT)

  # L in [0, 100] -> [-1, 1], as colour.normalize_l does.
  x = layers.Rescaling(2.0 / colour.L_MAX, offset=-1.0, name="normalize_l")(l_in)
  for i, (filters, stride) in enumerate(ENCODER):
    init = {"kernel_initializer": "he_normal"} if i == 0 else {}
    x = _conv(w(filters), f"encoder_{i}", strides=stride, **init)(x)

  fusion_size = image_size // 8
  e = layers.Reshape((1, 1, embedding_dim), name="embedding_as_pixel")(emb_in)
  e = layers.UpSampling2D(fusion_size, name="repeat_embedding")(e)
  x = layers.Concatenate(name="fuse")([x, e])
  x = _conv(w(256), "fusion", kernel_size=1)(x)

  x = _conv(w(128), "decoder_0")(x)
  x = layers.UpSampling2D(2, name="up_56")(x)
  x = _conv(w(64), "decoder_1")(x)
  x = _conv(w(64), "decoder_2")(x)
  x = layers.UpSampling2D(2, name="up_112")(x)
  x = _conv(w(32), "decoder_3")(x)
  x = _conv(2, "decoder_ab", activation="tanh")(x)
  x = layers.UpSampling2D(2, name="up_224")(x)
  ab = layers.Activation("linear", dtype="float32", name=AB_OUTPUT)(x)
  return keras.Model({L_INPUT: l_in, EMBEDDING_INPUT: emb_in}, ab, name="koala_colorizer")


GUIDED_ARCHITECTURES = ("multiscale", "input")


def build_guided_colorizer(image_size: int = schema.IMAGE_SIZE,
                           embedding_dim: int = schema.EMBEDDING_DIM,
                           width: float = 1.0, architecture: str = "multiscale") -> keras.Model:
  """The SPEC colorizer plus guidance: local colour hints and a reference palette.

  Inputs (a dict): "l" (S, S, 1) L in 0..100, "embedding" (embedding_dim,), "hints" (S, S, 3)
  hint planes and "palette" (PALETTE_SIZE,), both laid out as koala.guidance describes; zero
  hints and a zero palette are automatic mode. Output "ab" (S, S, 2), ab / 128 (tanh), as the
  SPEC model's. Only standard Keras layers, so the .keras file loads without custom objects.

  architecture:
    "input"       the SPEC trunk, hint planes concatenated with L at the encoder input (4
                  channels), the palette tiled at 28 x 28 beside the embedding before the fusion.
    "multiscale"  (default) the same, plus what Zhang et al.'s network has: the hint planes,
                  area-averaged, enter again at 112, 56 and 28 (encoder and decoder), and skip
                  connections carry the encoder's 112 and 56 features to the decoder. Without them
                  a hint has to cross the 28 x 28 bottleneck and come back (docs/trainer.md,
                  "Guidance", has the measured comparison that chose this default).
  """
  if architecture not in GUIDED_ARCHITECTURES:
    raise ValueError(f"architecture must be one of {GUIDED_ARCHITECTURES}, got {architecture!r}")
  if width <= 0:
    raise ValueError(f"width must be > 0, got {width}")
  multiscale = architecture == "multiscale"
  w = lambda filters: max(1, int(round(filters * width)))
  l_in = keras.Input((image_size, image_size, 1), name=L_INPUT)
  emb_in = keras.Input((embedding_dim,), name=EMBEDDING_INPUT)
  hints_in = keras.Input((image_size, image_size, guidance.HINT_CHANNELS), name=HINTS_INPUT)
  palette_in = keras.Input((guidance.PALETTE_SIZE,), name=PALETTE_INPUT)

  pooled = {}

  def hints_at(factor: int):
    # Area average of (a*m, b*m, m): the share of hinted pixels and their mean colour times it.
    if factor not in pooled:
      pooled[factor] = layers.AveragePooling2D(factor, name=f"hints_{image_size // factor}")(
          hints_in)
    return pooled[factor]

  x = layers.Rescaling(2.0 / colour.L_MAX, offset=-1.0, name="normalize_l")(l_in)
  x = layers.Concatenate(name="l_and_hints")([x, hints_in])
  skips = {}
  for i, (filters, stride) in enumerate(ENCODER):
    init = {"kernel_initializer": "he_normal"} if i == 0 else {}
    x = _conv(w(filters), f"encoder_{i}", strides=stride, **init)(x)
    if multiscale and i in (1, 3):   # the last layer at 112 and at 56
      side = 2 if i == 1 else 4
      skips[side] = x
      x = layers.Concatenate(name=f"encoder_hints_{image_size // side}")(
          [x, hints_at(side)])

  fusion_size = image_size // 8
  e = layers.Reshape((1, 1, embedding_dim), name="embedding_as_pixel")(emb_in)
  e = layers.UpSampling2D(fusion_size, name="repeat_embedding")(e)
  p = layers.Reshape((1, 1, guidance.PALETTE_SIZE), name="palette_as_pixel")(palette_in)
  p = layers.UpSampling2D(fusion_size, name="repeat_palette")(p)
  fused = [x, e, p] + ([hints_at(8)] if multiscale else [])
  x = layers.Concatenate(name="fuse")(fused)
  x = _conv(w(256), "fusion", kernel_size=1)(x)

  x = _conv(w(128), "decoder_0")(x)
  x = layers.UpSampling2D(2, name="up_56")(x)
  if multiscale:
    x = layers.Concatenate(name="skip_56")([x, skips[4], hints_at(4)])
  x = _conv(w(64), "decoder_1")(x)
  x = _conv(w(64), "decoder_2")(x)
  x = layers.UpSampling2D(2, name="up_112")(x)
  if multiscale:
    x = layers.Concatenate(name="skip_112")([x, skips[2], hints_at(2)])
  x = _conv(w(32), "decoder_3")(x)
  x = _conv(2, "decoder_ab", activation="tanh")(x)
  x = layers.UpSampling2D(2, name="up_224")(x)
  ab = layers.Activation("linear", dtype="float32", name=AB_OUTPUT)(x)
  inputs = {L_INPUT: l_in, EMBEDDING_INPUT: emb_in, HINTS_INPUT: hints_in,
            PALETTE_INPUT: palette_in}
  return keras.Model(inputs, ab, name=f"koala_guided_colorizer_{architecture}")


def input_names(model: keras.Model) -> list[str]:
  """The names of a (possibly loaded) model's inputs."""
  if isinstance(model.input, dict):
    return list(model.input)
  return [t.name.split(":")[0] for t in model.inputs]


def is_guided(model: keras.Model) -> bool:
  """True for a build_guided_colorizer model (it takes "hints" and "palette" inputs)."""
  return HINTS_INPUT in input_names(model)


def model_image_size(model: keras.Model) -> int:
  """The side of the L input a (possibly loaded) colorizer expects: 224 for the SPEC model."""
  inputs = model.input if isinstance(model.input, dict) else {
      t.name.split(":")[0]: t for t in model.inputs}
  return int(inputs[L_INPUT].shape[1])
