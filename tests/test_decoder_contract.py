"""One decoder contract for training and serving (koala.images.FORMATS): the same files, made
here, go through the pipeline's per-image path and through the served model's graph, and both
accept the same ones, see the same first frame, and refuse the same ones with a reason."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from koala import colour, images
from pipeline import preprocess
from serving import inference, pages, tf_page
from tests import corpus, serving_support

LOSSLESS = ("page.png", "animated.png", "page.webp", "page.bmp", "still.gif", "animated.gif")
LOSSY = ("page.jpg", "page.mpo")
REFUSED = {"page.tiff": "TIFF", "animated.webp": "animated WebP"}


def encode(frames, fmt, **kw) -> bytes:
  buf = io.BytesIO()
  frames[0].save(buf, fmt, save_all=len(frames) > 1, append_images=frames[1:], **kw)
  return buf.getvalue()


@pytest.fixture(scope="module")
def files():
  """name -> (bytes, the RGB the file's first frame holds)."""
  scenes = [Image.fromarray(corpus.colour_scene(s, 150, 110)) for s in (21, 22)]
  paletted = [s.quantize(64) for s in scenes]   # what a GIF stores: 64 colours
  first, first_gif = np.asarray(scenes[0]), np.asarray(paletted[0].convert("RGB"))
  made = {
      "page.png": (encode(scenes[:1], "PNG"), first),
      "animated.png": (encode(scenes, "PNG"), first),          # APNG
      "page.webp": (encode(scenes[:1], "WEBP", lossless=True), first),
      "page.bmp": (encode(scenes[:1], "BMP"), first),
      "still.gif": (encode(paletted[:1], "GIF"), first_gif),
      "animated.gif": (encode(paletted, "GIF", duration=100, loop=0), first_gif),
      "page.jpg": (encode(scenes[:1], "JPEG", quality=95), first),
      "page.mpo": (encode(scenes, "MPO", quality=95), first),   # a camera's two-picture JPEG
      "page.tiff": (encode(scenes[:1], "TIFF"), None),
      "animated.webp": (encode(scenes, "WEBP", lossless=True), None),
  }
  assert Image.open(io.BytesIO(made["animated.gif"][0])).n_frames == 2
  assert Image.open(io.BytesIO(made["animated.webp"][0])).is_animated
  return made


def neutral_gray(rgb):
  return colour.to_uint8(colour.l_to_neutral_gray(colour.rgb_to_l(rgb))).astype(int)


@pytest.mark.parametrize("name", LOSSLESS + LOSSY)
def test_both_paths_accept_the_format_and_see_its_first_frame(files, name):
  data, first_frame = files[name]
  # The pipeline: decoded, and made into a record (not rejected).
  rgb = images.decode_image(data)
  prepared = preprocess.prepare_image(data, name)
  assert prepared.original_size == first_frame.shape[:2]
  # The served graph: decoded to the gray of the same picture.
  served = tf_page.decode_gray(tf.constant(data), images.DEFAULT_MAX_PIXELS).numpy().astype(int)
  truth = neutral_gray(first_frame)
  if name in LOSSLESS:   # exactly the first frame, in both (colour maths: +-1 level)
    np.testing.assert_array_equal(rgb, first_frame)
    assert np.abs(served - truth).max() <= 1
  else:                  # two JPEG decoders of one file: a level apart; both the first picture
    assert np.abs(served - neutral_gray(rgb)).mean() < 1.5
    assert np.abs(served - truth).mean() < 4 and np.abs(neutral_gray(rgb) - truth).mean() < 4
  assert pages.is_page_name(name) == (name != "page.mpo")   # MPO files are named .jpg


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_both_paths_refuse_the_same_formats_with_a_reason(files, name):
  data, _ = files[name]
  with pytest.raises(images.ImageError, match=f"unsupported format.*{REFUSED[name]}"):
    preprocess.prepare_image(data, name)
  with pytest.raises(tf.errors.InvalidArgumentError, match="Not a supported image"):
    tf_page.decode_gray(tf.constant(data), images.DEFAULT_MAX_PIXELS)
  assert not pages.is_page_name(name) or name.endswith(".webp")


def test_the_exported_model_in_process_takes_the_same_files(files):
  colorize = inference.load(serving_support.export_base("tiny"))
  for name in LOSSLESS + LOSSY:
    data, first_frame = files[name]
    out = np.asarray(Image.open(io.BytesIO(colorize(data))))
    assert out.shape == first_frame.shape, name
  for name in REFUSED:
    with pytest.raises(ValueError, match="refused the image.*Not a supported image"):
      colorize(files[name][0])
