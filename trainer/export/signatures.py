"""The exported SavedModel's interface: its signature and tensor names, in one place for the
export that writes them (trainer/export/module.py, trainer/export/guidance.py) and everything
that calls them (the REST client and stand-in server, the in-process API, the Streamlit page,
the batch job). Plain names and no TensorFlow, so the REST client imports it without
TensorFlow."""

SERVING_DEFAULT = "serving_default"    # image_bytes -> png_bytes
COLORIZE_TENSORS = "colorize_tensors"  # l + embedding -> ab
COLORIZE_GUIDED = "colorize_guided"    # image_bytes + hints_bytes + reference_bytes -> png_bytes

IMAGE_BYTES = "image_bytes"
HINTS_BYTES = "hints_bytes"
REFERENCE_BYTES = "reference_bytes"
PNG_BYTES = "png_bytes"


def signature_for(hints, reference) -> str:
  """The signature that colours a page given the user's guidance: `colorize_guided` when hints
  or a reference is given, `serving_default` when neither is. One rule for the in-process API,
  the REST client (per page) and the batch job (per job: its --hints_dir and --reference), so a
  page gets the same PNG from each; a guided model's serving_default is its colorize_guided
  with empty guidance, the same bytes."""
  return SERVING_DEFAULT if hints is None and reference is None else COLORIZE_GUIDED


def signature_inputs(image: bytes, hints: bytes | None = None,
                     reference: bytes | None = None) -> tuple[str, dict[str, bytes]]:
  """(the signature for this guidance, its inputs by name) for one page; in `colorize_guided`,
  an empty string is the graph's "none"."""
  name = signature_for(hints, reference)
  if name == SERVING_DEFAULT:
    return name, {IMAGE_BYTES: image}
  return name, {IMAGE_BYTES: image, HINTS_BYTES: hints or b"", REFERENCE_BYTES: reference or b""}


def no_guidance(model: str) -> str:
  """What every interface says when hints or a reference meet a model trained without them."""
  return (f"{model} takes no hints or reference: it has no {COLORIZE_GUIDED} signature "
          "(train with `python -m trainer.task --hints`, then export)")
