"""One decoder contract for training and serving (koala.images.FORMATS): the same files, made
here, go through the pipeline's per-image path and through the served model's graph, and both
accept the same ones, see the same first frame the same way up (EXIF orientation), and refuse
the same ones with a reason, GIFs whose frames would decode past the pixel cap included."""
import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from koala import colour, images
from pipeline import preprocess
from serving import inference, page_names
from trainer.export import guidance as tf_guidance, page as tf_page
from tests import corpus

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
  assert page_names.is_page_name(name) == (name != "page.mpo")   # MPO files are named .jpg


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_both_paths_refuse_the_same_formats_with_a_reason(files, name):
  data, _ = files[name]
  with pytest.raises(images.ImageError, match=f"unsupported format.*{REFUSED[name]}"):
    preprocess.prepare_image(data, name)
  with pytest.raises(tf.errors.InvalidArgumentError, match="Not a supported image"):
    tf_page.decode_gray(tf.constant(data), images.DEFAULT_MAX_PIXELS)
  assert not page_names.is_page_name(name) or name.endswith(".webp")


def test_the_exported_model_in_process_takes_the_same_files(files, untrained_export):
  colorize = inference.load(untrained_export)
  for name in LOSSLESS + LOSSY:
    data, first_frame = files[name]
    out = np.asarray(Image.open(io.BytesIO(colorize(data))))
    assert out.shape == first_frame.shape, name
  for name in REFUSED:
    with pytest.raises(ValueError, match="refused the image.*Not a supported image"):
      colorize(files[name][0])


# --- what the decoders will allocate: every GIF frame (issue 19) ---------------------------------

SCREEN = (10, 10)
GIF_BOMBS = {   # a 10 x 10 logical screen: TensorFlow decodes at the largest frame's size
    "large first frame": [(8000, 8000, 0, 0)],
    "large second frame": [(10, 10, 0, 0), (8000, 8000, 0, 0)],
    "frame off the screen": [(10, 10, 0, 0), (4, 4, 8, 0)],
}


@pytest.mark.parametrize("case", sorted(GIF_BOMBS))
def test_both_paths_refuse_a_gif_frame_outside_its_screen(case):
  data = corpus.blank_gif(SCREEN, GIF_BOMBS[case])
  assert len(data) < 30_000
  for check in (images.image_size, images.decode_image):   # the pre-checks, and the pipeline
    with pytest.raises(images.ImageError, match="GIF frame .* outside its logical screen"):
      check(data)
  with pytest.raises(tf.errors.InvalidArgumentError, match="GIF frame outside its logical screen"):
    tf_page.decode_gray(tf.constant(data), images.DEFAULT_MAX_PIXELS)
  for name in ("hints_bytes", "reference_bytes"):
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{name}: GIF frame outside"):
      tf_guidance.decode_rgba(tf.constant(data), images.DEFAULT_MAX_PIXELS, name)


def test_every_gif_frame_counts_against_the_pixel_cap():
  """TensorFlow's GIF decoder reads every frame into memory: 40 frames of 100 x 100 are 400,000
  pixels to decode, past a 300,000 cap, though the screen is 10,000."""
  many = corpus.blank_gif((100, 100), [(100, 100, 0, 0)] * 40)
  two = corpus.blank_gif((100, 100), [(100, 100, 0, 0)] * 2)
  cap = 300_000
  with pytest.raises(images.ImageError, match=r"100x100 \(all its GIF frames\) = 400000 > cap"):
    images.decode_image(many, max_pixels=cap)
  with pytest.raises(images.ImageError, match="too many pixels"):
    images.check_pixels(many, cap)
  with pytest.raises(tf.errors.InvalidArgumentError, match="Image too large"):
    tf_page.decode_gray(tf.constant(many), cap)
  assert images.check_pixels(two, cap) == (100, 100)
  assert images.decode_image(two, max_pixels=cap).shape == (100, 100, 3)
  assert tf_page.decode_gray(tf.constant(two), cap).shape == (100, 100)


def test_other_formats_decode_no_more_than_their_header_says(files):
  """The same class of hole, looked for elsewhere: an APNG frame larger than its IHDR (both
  decode the IHDR's size), a WebP whose frame is larger than its VP8X canvas (libwebp refuses
  it in both)."""
  apng = bytearray(files["animated.png"][0])
  second = apng.index(b"fcTL", apng.index(b"fcTL") + 1)
  apng[second + 8:second + 16] = struct.pack(">II", 3000, 3000)
  apng[second + 30:second + 34] = struct.pack(">I", zlib.crc32(apng[second:second + 30]))
  assert images.decode_image(bytes(apng)).shape == (150, 110, 3)
  assert tf_page.decode_gray(tf.constant(bytes(apng)), 200_000).shape == (150, 110)
  big = encode([Image.new("RGB", (3000, 3000), "white")], "WEBP", lossless=True)
  canvas = struct.pack("<I", 9)[:3] * 2                     # 10 x 10, minus one each
  vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + canvas
  body = b"WEBP" + vp8x + big[12:]
  small_canvas = b"RIFF" + struct.pack("<I", len(body)) + body
  with pytest.raises(images.ImageError):
    images.decode_image(small_canvas)
  with pytest.raises(tf.errors.InvalidArgumentError):
    tf_page.decode_gray(tf.constant(small_canvas), images.DEFAULT_MAX_PIXELS)


# --- EXIF orientation: the pipeline and the served graph turn a JPEG upright alike ---------------

@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_both_paths_turn_a_jpeg_upright_by_its_exif_orientation(orientation, endian):
  upright = corpus.colour_scene(23, 90, 140)
  data = corpus.oriented_jpeg(upright, orientation, endian)
  rgb = images.decode_image(data)
  served = tf_page.decode_gray(tf.constant(data), images.DEFAULT_MAX_PIXELS).numpy().astype(int)
  assert rgb.shape == upright.shape and served.shape == upright.shape[:2]
  assert np.abs(served - neutral_gray(rgb)).mean() < 1.5          # two JPEG decoders of one file
  assert np.abs(neutral_gray(rgb) - neutral_gray(upright)).mean() < 4
  # a hint image or a reference is turned upright as the page is, so a hint stays where it was
  # drawn on the page the user sees
  rgba = tf_guidance.decode_rgba(tf.constant(data), images.DEFAULT_MAX_PIXELS, "hints_bytes")
  assert rgba.shape == upright.shape[:2] + (4,)
  assert np.abs(rgba.numpy()[..., :3].astype(int) - rgb).mean() < 3
