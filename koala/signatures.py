"""The exported SavedModel's interface: its signature and tensor names, in one place for the
export that writes them (trainer/export.py, serving/tf_guidance.py) and everything that calls
them (the REST client and stand-in server, the in-process API, the Streamlit page, the batch
job). Plain names and no TensorFlow, so the REST client imports it without TensorFlow."""

SERVING_DEFAULT = "serving_default"    # image_bytes -> png_bytes
COLORIZE_TENSORS = "colorize_tensors"  # l + embedding -> ab
COLORIZE_GUIDED = "colorize_guided"    # image_bytes + hints_bytes + reference_bytes -> png_bytes

IMAGE_BYTES = "image_bytes"
HINTS_BYTES = "hints_bytes"
REFERENCE_BYTES = "reference_bytes"
PNG_BYTES = "png_bytes"


def no_guidance(model: str) -> str:
  """What every interface says when hints or a reference meet a model trained without them."""
  return (f"{model} takes no hints or reference: it has no {COLORIZE_GUIDED} signature "
          "(train with `python -m trainer.task --hints`, then export)")
