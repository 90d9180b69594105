"""Training throughput of the colorizer: python bench/train_throughput.py [options]

Builds the project's own model (trainer.model.build_colorizer, full size by default) and, for
each batch size and precision, measures in one run:
  fit   images/s of Keras `model.fit` on synthetic batches (what users run);
  bare  images/s of a bare training loop over the same model, same optimizer, same data: on
        JAX a jax.jit step over `model.stateless_call` + `optimizer.stateless_apply`, on
        TensorFlow a tf.function GradientTape step. This is the reference of the same run;
  ratio fit / bare: what Keras's machinery costs (or saves) on this machine.
Fixed figures measured once on one H200 (bf16, batch 256) are printed for context.

Backends: KERAS_BACKEND=jax runs without importing TensorFlow (the lent GPU machine has JAX and
no TensorFlow; the script checks and reports it), KERAS_BACKEND=tensorflow (default here) gives
the CPU figure on a development machine. Keras's levers for fit are flags:
--steps_per_execution, --jit_compile, --input_dtype, --data (batches resident on the device, or
NumPy on the host copied each step).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _NoTensorFlow:
  """--forbid_tensorflow: makes `import tensorflow` fail, as on the GPU machine that has none.
  (Keras itself imports TensorFlow opportunistically wherever it is installed, e.g. in
  set_random_seed, so "not in sys.modules" proves nothing on a machine that has it.)"""

  def find_spec(self, name, path=None, target=None):
    if name == "tensorflow" or name.startswith("tensorflow."):
      raise ImportError(f"{name} is forbidden by --forbid_tensorflow")
    return None


if "--forbid_tensorflow" in sys.argv:
  sys.meta_path.insert(0, _NoTensorFlow())

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from trainer.model import EMBEDDING_INPUT, L_INPUT, build_colorizer  # noqa: E402  (pure Keras: no TensorFlow)

# One H200, bf16 autocast / mixed_bfloat16, batch 256 (issue 3); the original project's unnamed GPU.
REFERENCES = {
    "PyTorch torch.compile + bf16 autocast, same layers (H200)": 8252,
    "bare JAX loop, same layers (H200)": 8970,
    "plain Keras model.fit, default settings (H200)": 7920,
    "target for Keras model.fit (H200, mixed_bfloat16, batch 256)": 8300,
    "the original project's GPU": 83,
}


def synthetic_batch(batch: int, size: int, dtype: str, rng: np.random.Generator):
  """L in [0, 100], a 1536-d embedding and an ab / 128 target, as the trainer feeds them."""
  x = {L_INPUT: rng.uniform(0, 100, (batch, size, size, 1)).astype(np.float32),
       EMBEDDING_INPUT: rng.normal(0, 1, (batch, 1536)).astype(np.float32)}
  y = rng.uniform(-0.5, 0.5, (batch, size, size, 2)).astype(np.float32)
  if dtype != "float32":
    x = {k: ops.cast(v, dtype) for k, v in x.items()}
    y = ops.cast(y, dtype)
  return x, y


def to_device(tree):
  return keras.tree.map_structure(ops.convert_to_tensor, tree)


class RepeatBatch(keras.utils.PyDataset):
  """The same (device-resident) batch, `steps` times: measures the step, not an input pipeline."""

  def __init__(self, batch, steps: int):
    super().__init__()
    self.batch, self.steps = batch, steps

  def __len__(self):
    return self.steps

  def __getitem__(self, i):
    return self.batch


def sync(value):
  """Waits for the device: converting a result to NumPy blocks until it is computed."""
  return float(np.asarray(keras.tree.flatten(value)[0], np.float32).ravel()[0])


def mse(y, pred):
  return ops.mean(ops.square(ops.cast(y, "float32") - ops.cast(pred, "float32")))


def bare_step_fn(model, optimizer, jit: bool):
  """A training step without fit: returns step(x, y) -> loss, run `steps` times by the caller."""
  backend = keras.backend.backend()
  if backend == "jax":
    import jax
    optimizer.build(model.trainable_variables)
    state = [[v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables],
             [v.value for v in optimizer.variables]]

    def loss_fn(tv, ntv, x, y):
      pred, ntv = model.stateless_call(tv, ntv, x, training=True)
      return mse(y, pred), ntv

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state, x, y):
      tv, ntv, ov = state
      (loss, ntv), grads = grad_fn(tv, ntv, x, y)
      tv, ov = optimizer.stateless_apply(ov, grads, tv)
      return loss, [tv, ntv, ov]

    train_step = jax.jit(train_step, donate_argnums=0) if jit else train_step

    def step(x, y):
      loss, state[:] = train_step(state, x, y)
      return loss
    return step
  if backend == "tensorflow":
    import tensorflow as tf

    @tf.function(jit_compile=jit)
    def step(x, y):
      with tf.GradientTape() as tape:
        loss = mse(y, model(x, training=True))
      grads = tape.gradient(loss, model.trainable_variables)
      optimizer.apply(grads, model.trainable_variables)
      return loss
    return step
  raise SystemExit(f"backend {backend} is not supported by this benchmark (jax, tensorflow)")


def build(precision: str, args):
  keras.mixed_precision.set_global_policy(precision)
  keras.utils.set_random_seed(0)
  model = build_colorizer(args.image_size, width=args.width)
  return model, keras.optimizers.Adam(1e-4)


def measure(batch: int, precision: str, args) -> dict:
  rng = np.random.default_rng(0)
  input_dtype = args.input_dtype if args.input_dtype != "policy" else (
      "float32" if precision == "float32" else precision.split("_", 1)[1])
  x, y = synthetic_batch(batch, args.image_size, input_dtype, rng)
  jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]

  model, optimizer = build(precision, args)
  model.compile(optimizer=optimizer, loss="mse", jit_compile=jit,
                steps_per_execution=args.steps_per_execution)
  # device: the batch lives on the accelerator; host: NumPy, which Keras copies every step.
  batch_data = to_device((x, y)) if args.data == "device" else keras.tree.map_structure(
      lambda a: np.asarray(ops.convert_to_numpy(a)), (x, y))
  fit = lambda n: model.fit(RepeatBatch(batch_data, n), epochs=1, verbose=0)
  warm = args.warmup * args.steps_per_execution
  steps = max(args.steps // args.steps_per_execution, 1) * args.steps_per_execution
  fit(warm)   # compiles
  start = time.perf_counter()
  history = fit(steps)
  fit_s = time.perf_counter() - start
  fit_loss = history.history["loss"][-1]

  model, optimizer = build(precision, args)
  step = bare_step_fn(model, optimizer, jit=args.jit_compile != "false")
  xd, yd = to_device((x, y))
  for _ in range(args.warmup):
    sync(step(xd, yd))
  start = time.perf_counter()
  for _ in range(steps):
    loss = step(xd, yd)
  sync(loss)
  bare_s = time.perf_counter() - start
  keras.mixed_precision.set_global_policy("float32")
  fit_ips, bare_ips = batch * steps / fit_s, batch * steps / bare_s
  return {"batch": batch, "precision": precision, "steps": steps, "fit_images_per_s": fit_ips,
          "bare_images_per_s": bare_ips, "ratio_fit_to_bare": fit_ips / bare_ips,
          "fit_final_loss": fit_loss}


def device_name() -> str:
  backend = keras.backend.backend()
  if backend == "jax":
    import jax
    d = jax.devices()[0]
    return f"{d.platform}: {getattr(d, 'device_kind', d)} x{len(jax.devices())}"
  import tensorflow as tf
  gpus = tf.config.list_physical_devices("GPU")
  cpu = f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
  return f"GPU x{len(gpus)}" if gpus else cpu


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--batch_sizes", default="32,256")
  p.add_argument("--precisions", default="float32,mixed_bfloat16",
                 help="Keras dtype policies: float32, mixed_bfloat16, mixed_float16.")
  p.add_argument("--steps", type=int, default=20, help="Timed steps per measurement.")
  p.add_argument("--warmup", type=int, default=3, help="Untimed steps first (compilation).")
  p.add_argument("--steps_per_execution", type=int, default=1)
  p.add_argument("--jit_compile", choices=("auto", "true", "false"), default="auto")
  p.add_argument("--input_dtype", default="float32",
                 help="dtype of the synthetic inputs and target: float32, bfloat16, float16, "
                      "or 'policy' (the policy's compute dtype).")
  p.add_argument("--data", choices=("device", "host"), default="device",
                 help="device: one batch resident on the accelerator, fed again each step; "
                      "host: NumPy arrays, copied to the device every step.")
  p.add_argument("--width", type=float, default=1.0, help="1.0 is the SPEC model.")
  p.add_argument("--image_size", type=int, default=224)
  p.add_argument("--json", help="Also write the results here.")
  p.add_argument("--forbid_tensorflow", action="store_true",
                 help="Fail any import of TensorFlow (to check the JAX path on a machine with it).")
  args = p.parse_args(argv)

  backend = keras.backend.backend()
  print(f"backend {backend}, keras {keras.__version__}, device {device_name()}")
  probe = build("float32", args)[0]
  print(f"model: {probe.count_params():,} parameters, width {args.width}, "
        f"{args.image_size}x{args.image_size}; data on {args.data}, jit_compile={args.jit_compile},"
        f" steps_per_execution={args.steps_per_execution}, inputs {args.input_dtype}")
  del probe
  rows = []
  print(f"{'batch':>6} {'precision':>15} {'fit img/s':>11} {'bare img/s':>11} {'fit/bare':>9}")
  for batch in (int(b) for b in args.batch_sizes.split(",")):
    for precision in args.precisions.split(","):
      r = measure(batch, precision, args)
      rows.append(r)
      print(f"{batch:>6} {precision:>15} {r['fit_images_per_s']:>11.1f} "
            f"{r['bare_images_per_s']:>11.1f} {r['ratio_fit_to_bare']:>9.3f}", flush=True)
  print("fixed references (images/s, not measured here):")
  for name, value in REFERENCES.items():
    print(f"  {value:>6}  {name}")
  tf_loaded = "tensorflow" in sys.modules
  print(f"TensorFlow imported: {tf_loaded}" + (" (forbidden: this run had no TensorFlow)"
                                               if args.forbid_tensorflow else ""))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"backend": backend, "device": device_name(), "args": vars(args), "rows": rows,
                 "tensorflow_imported": tf_loaded}, f, indent=2)
  return rows


if __name__ == "__main__":
  main()
