"""Runs inside the side virtualenv of tests/test_serving_runtime.py (another TensorFlow version,
nothing of the project installed): loads a SavedModel, calls each of its signatures on the
inputs it is given and hands the outputs back.

  python runtime_probe.py SAVED_MODEL INPUTS.pkl OUTPUTS.pkl

INPUTS.pkl: {signature: {input name: numpy array}}. OUTPUTS.pkl: {"tensorflow": version,
"signatures": [every signature the model has], "outputs": {signature: {output: array}}}.
"""
import pickle
import sys

import tensorflow as tf


def main(saved_model: str, inputs_path: str, outputs_path: str) -> None:
  model = tf.saved_model.load(saved_model)
  with open(inputs_path, "rb") as f:
    inputs = pickle.load(f)
  outputs = {}
  for name, feed in inputs.items():
    fn = model.signatures[name]
    result = fn(**{k: tf.constant(v) for k, v in feed.items()})
    outputs[name] = {k: v.numpy() for k, v in result.items()}
  with open(outputs_path, "wb") as f:
    pickle.dump({"tensorflow": tf.__version__, "signatures": sorted(model.signatures),
                 "outputs": outputs}, f)


if __name__ == "__main__":
  main(*sys.argv[1:])
