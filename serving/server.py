"""A stand-in for tensorflow_model_server's REST API, for machines without Docker and for tests.

  python -m serving.server --model_base_path=models/koala --model_name=koala \
      --rest_api_port=8501 [--host=127.0.0.1]

Why it exists: our users run real TF Serving (docs/serving.md has the `docker run` line), but
a laptop without Docker, and CI, still need to serve an export and talk to it over the very
same API. So the flags mirror tensorflow_model_server's and the wire behaviour copies TF
Serving's (g3doc/api/api_rest.md, http_rest_api_handler.cc, http_server.cc):

  GET  /v1/models/NAME[/versions/N]             model status
  GET  /v1/models/NAME[/versions/N]/metadata    signature defs, read from saved_model.pb
  POST /v1/models/NAME[/versions/N]:predict     row ("instances") or columnar ("inputs")
  errors: {"error": "..."} with TF Serving's mapping of status codes to HTTP (400, 404, 429,
  501, 503, ...); GET or POST on the wrong path is "Malformed request" (400), as TF Serving
  answers; methods libevent does not let through get 501; paths outside /v1/ get 404.

It serves the highest numeric version under the base path and, like TF Serving, picks up a
newer one when it appears (polling every --file_system_poll_wait_seconds).

Like TF Serving's libevent server it is event-driven (aiohttp, serving/http_front.py): requests
are read and written on one event loop, and only the model work runs on a bounded thread pool
(--rest_api_num_threads), so slow or hostile clients cannot hold the model threads. Every
request and every prediction is bounded (`Limits`, serving/admission.py; docs/serving.md has
the table: 408, 431, 400, 503, 504). It binds to loopback unless told otherwise, and
SIGTERM/SIGINT let the predictions in flight finish, then exit 0. Nothing in serving/client.py
depends on this module.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
import threading
import time

import numpy as np
from aiohttp import web

from trainer.export.signatures import IMAGE_BYTES, SERVING_DEFAULT
from serving import admission, rest_json
from serving.admission import Deadline, Slots
from serving.bounded_http import BoundedProtocol, Limits, raise_fd_limit
from serving.http_front import LINGER_SECONDS, SHUTDOWN_SECONDS, HttpFront
from serving.rest_json import RestError, invalid

PREDICT_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)")
STATUS_PATH = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?")

_LOG = logging.getLogger("serving.server")


def _tf():
  import tensorflow as tf
  return tf


def numeric_versions(base_path: str) -> list[int]:
  tf = _tf()
  if not tf.io.gfile.isdir(base_path):
    return []
  return sorted(int(n.strip("/")) for n in tf.io.gfile.listdir(base_path)
                if n.strip("/").isdigit()
                and tf.io.gfile.exists(f"{base_path.rstrip('/')}/{n.strip('/')}/saved_model.pb"))


class LoadedModel:
  """One loaded version: its signatures (callable), their specs, and TF Serving's metadata."""

  def __init__(self, path: str, version: int):
    tf = _tf()
    self.version = version
    self.module = tf.saved_model.load(path)
    self.signatures = dict(self.module.signatures)
    self.inputs, self.outputs = {}, {}
    for name, fn in self.signatures.items():
      self.inputs[name] = {k: _spec(k, v) for k, v in fn.structured_input_signature[1].items()}
      self.outputs[name] = {k: _spec(k, v) for k, v in fn.structured_outputs.items()}
    self.signature_defs = _signature_defs_json(path)
    self.warm_up()

  def warm_up(self) -> None:
    """Calls every signature once on a small made-up input before the version is served (TF
    Serving's warm-up requests): a signature's first call optimises its graph, seconds that
    would count against a user's deadline. One the input does not fit is left cold (logged)."""
    tf = _tf()
    page = tf.io.encode_png(tf.fill([64, 64, 1], tf.constant(255, tf.uint8)))
    for name, fn in self.signatures.items():
      feeds = {}
      for key, spec in fn.structured_input_signature[1].items():
        shape = [1 if d is None else d for d in spec.shape.as_list()]
        if spec.dtype == tf.string:
          feeds[key] = tf.fill(shape, page if key == IMAGE_BYTES else tf.constant(b""))
        else:
          feeds[key] = tf.zeros(shape, spec.dtype)
      try:
        fn(**feeds)
      except Exception as e:
        _LOG.warning("version %d: %s not warmed up (%s)", self.version, name, str(e)[:200])

  def predict(self, signature: str, arrays: dict, deadline: Deadline | None = None) -> dict:
    tf = _tf()
    _check(deadline)                               # its 504 went while it was parsed
    fn = self.signatures[signature]
    feeds = {}
    for name, arr in arrays.items():
      spec = self.inputs[signature][name]
      feeds[name] = tf.constant(arr.tolist() if spec.is_string else arr,
                                dtype=tf.string if spec.is_string else spec.dtype)
    try:
      if deadline is None:
        result = fn(**feeds)
      else:
        with deadline.running():
          result = fn(**feeds)
    except tf.errors.OpError as e:
      raise RestError(_code_name(e), e.message) from None
    except (TypeError, ValueError) as e:
      raise invalid(str(e)) from None
    _check(deadline)     # its 504 has gone: no copying and formatting what nobody will read
    return {k: v.numpy() for k, v in result.items()}

  def json_value_cap(self, max_batch_size: int) -> int | None:
    """The most JSON values a request of max_batch_size examples to any signature can need."""
    caps = [rest_json.max_json_values(inputs, max_batch_size) for inputs in self.inputs.values()]
    return None if None in caps else max(caps)


def _code_name(e) -> str:
  """A tf.errors.OpError -> its canonical code name, e.g. INVALID_ARGUMENT."""
  from tensorflow.core.protobuf import error_codes_pb2
  return error_codes_pb2.Code.Name(e.error_code)


def _spec(name, tensor_spec) -> rest_json.TensorSpec:
  tf = _tf()
  dtype = np.dtype(object) if tensor_spec.dtype == tf.string else tensor_spec.dtype.as_numpy_dtype
  shape = None if tensor_spec.shape.rank is None else tuple(tensor_spec.shape.as_list())
  return rest_json.TensorSpec(name, np.dtype(dtype), shape)


def _signature_defs_json(path: str) -> dict:
  """saved_model.pb's signature defs as TF Serving's metadata JSON prints them."""
  from google.protobuf import json_format
  from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
  tf = _tf()
  sm = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(f"{path.rstrip('/')}/saved_model.pb", "rb") as f:
    sm.ParseFromString(f.read())
  meta = next((m for m in sm.meta_graphs if "serve" in m.meta_info_def.tags), sm.meta_graphs[0])
  holder = meta_graph_pb2.MetaGraphDef()
  holder.signature_def.MergeFrom(meta.signature_def)
  as_dict = json_format.MessageToDict(holder, preserving_proto_field_name=True,
                                      always_print_fields_with_no_presence=True)
  return {"signature_def": as_dict.get("signature_def", {})}


class ModelManager:
  """Serves the highest version under the base path and swaps in newer ones as they appear."""

  def __init__(self, name: str, base_path: str):
    self.name = name
    self.base_path = base_path.rstrip("/")
    self._lock = threading.Lock()
    self._model: LoadedModel | None = None
    self.refresh()
    if self._model is None:
      raise SystemExit(f"no servable version under {base_path}: expected numbered folders "
                       f"holding saved_model.pb, e.g. {base_path}/1/saved_model.pb "
                       "(python -m trainer.export writes them)")

  def refresh(self) -> None:
    versions = numeric_versions(self.base_path)
    if not versions or (self._model and self._model.version >= versions[-1]):
      return
    version = versions[-1]
    started = time.time()
    model = LoadedModel(f"{self.base_path}/{version}", version)
    with self._lock:
      self._model = model
    _LOG.info("Successfully loaded servable version {name: %s version: %d} in %.1f s",
              self.name, version, time.time() - started)

  def _find(self, name: str, version: int | None, label: str | None,
            no_model: str, no_version: str) -> LoadedModel:
    """The served model if it matches the request, else TF Serving's error for the API."""
    with self._lock:
      model = self._model
    if label is not None:
      raise RestError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
    if name != self.name or model is None:
      raise RestError("NOT_FOUND", no_model)
    if version is not None and version != model.version:
      raise RestError("NOT_FOUND", no_version)
    return model

  def get(self, name: str, version: int | None, label: str | None) -> LoadedModel:
    """TF Serving's GetServableHandle, with its NOT_FOUND messages."""
    spec = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
    message = f"Servable not found for request: {spec}"
    return self._find(name, version, label, message, message)

  def status(self, name: str, version: int | None, label: str | None) -> dict:
    """GetModelStatus: the versions being served, with their state."""
    model = self._find(name, version, label, f"Could not find any versions of model {name}",
                       f"Could not find version {version} of model {name}")
    return {"model_version_status": [{
        "version": str(model.version), "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}


class App:
  """Routing and request handling, independent of the socket server."""

  def __init__(self, manager: ModelManager, max_batch_size: int):
    self.manager = manager
    self.max_batch_size = max_batch_size

  def handle(self, method: str, path: str, body: bytes,
             deadline: Deadline | None = None) -> tuple[int, bytes]:
    try:
      return 200, self._dispatch(method, path, body, deadline)
    except RestError as e:
      return e.http_status, rest_json.error_body(e.message)
    except Exception as e:   # a bug here must still answer, as TF Serving's INTERNAL does
      _LOG.exception("internal error on %s %s", method, path[:200])
      return 500, rest_json.error_body(f"Internal: {type(e).__name__}: {e}")

  def _dispatch(self, method: str, path: str, body: bytes, deadline: Deadline | None) -> bytes:
    m = PREDICT_PATH.fullmatch(path) if method == "POST" else None
    if m:
      name, version, label, verb = m.groups()
      if verb.lower() != "predict":
        raise RestError("UNIMPLEMENTED", f"{verb} is not implemented by this model server; "
                        "the koala model has predict signatures only")
      return self._predict(name, _version(version), label, body, deadline)
    m = STATUS_PATH.fullmatch(path) if method == "GET" else None
    if m:
      name, version, label, metadata = m.groups()
      if not name:
        raise invalid("Missing model name in request.")
      if metadata:
        model = self.manager.get(name, _version(version), label)
        return _json({"model_spec": {"name": name, "signature_name": "",
                                     "version": str(model.version)},
                      "metadata": {"signature_def": model.signature_defs}})
      return _json(self.manager.status(name, _version(version), label))
    raise invalid(f"Malformed request: {method} {path[:200]}")

  def _predict(self, name: str, version: int | None, label: str | None, body: bytes,
               deadline: Deadline | None) -> bytes:
    model = self.manager.get(name, version, label)
    # Counted before parsing: json.loads makes a Python object of every value (about 32 bytes
    # for a 4-byte number), so the body's size alone does not bound the memory.
    doc = rest_json.parse_json(body, max_values=model.json_value_cap(self.max_batch_size))
    signature = rest_json.signature_name(doc) or SERVING_DEFAULT
    if signature not in model.signatures:
      raise invalid(f'Serving signature name: "{signature}" not found in signature def')
    arrays, fmt = rest_json.parse_predict(doc, model.inputs[signature], self.max_batch_size)
    del doc
    outputs = model.predict(signature, arrays, deadline)
    _check(deadline)     # a batch of pages can take seconds to format (base64, then JSON)
    return rest_json.format_predict(outputs, fmt)


def _check(deadline: Deadline | None) -> None:
  """DEADLINE_EXCEEDED once the request's 504 has been answered: the model thread stops there."""
  if deadline is not None and deadline.passed:
    raise RestError("DEADLINE_EXCEEDED", deadline.message())


def _version(text: str | None) -> int | None:
  """A version from the path: an int64 as TF Serving parses it, else its INVALID_ARGUMENT."""
  if text is None:
    return None
  if len(text) > 19 or int(text) >= 2 ** 63:
    raise invalid(f"Failed to convert version: {text[:40]}{'...' if len(text) > 40 else ''} "
                  "to numeric.")
  return int(text)


def _json(obj) -> bytes:
  return json.dumps(obj, indent=1).encode()


async def _serve(args, manager: ModelManager, limits: Limits) -> None:
  loop = asyncio.get_running_loop()
  front = HttpFront(App(manager, args.max_batch_size), limits, args.rest_api_num_threads,
                    Slots(args.max_inflight), args.rest_api_timeout_in_ms)
  connections = web.Server(front.handle, loop=loop)
  access_log = logging.getLogger("serving.server.access")
  access_log.setLevel(logging.INFO if args.verbose else logging.WARNING)
  protocol_options = dict(
      loop=loop, keepalive_timeout=limits.keepalive_timeout, lingering_time=LINGER_SECONDS,
      # aiohttp's own per-line caps sit at the total, so ours (431) is the one that answers
      max_line_size=limits.max_header_bytes, max_field_size=limits.max_header_bytes,
      max_headers=limits.max_header_bytes // 4, auto_decompress=False,
      access_log=access_log, access_log_format='%a "%r" %s %b')
  listener = await loop.create_server(
      lambda: BoundedProtocol(connections, limits=limits, **protocol_options),
      args.host, args.rest_api_port, reuse_address=True,
      backlog=min(limits.max_connections, 4096))
  stop = asyncio.Event()
  for signum in (signal.SIGTERM, signal.SIGINT):
    loop.add_signal_handler(signum, stop.set)
  stopping = threading.Event()
  if args.file_system_poll_wait_seconds > 0:
    def poll():
      while not stopping.wait(args.file_system_poll_wait_seconds):
        try:
          manager.refresh()
        except Exception as e:   # a half-copied version is retried on the next poll
          _LOG.warning("could not load a new version: %s", e)
    threading.Thread(target=poll, daemon=True).start()
  host, port = listener.sockets[0].getsockname()[:2]
  # The same line tensorflow_model_server prints; scripts (and our tests) wait for it.
  print(f"Exporting HTTP/REST API at:{host}:{port} ...", flush=True)
  await stop.wait()
  _LOG.info("received a signal, finishing requests in flight")
  stopping.set()
  listener.close()
  for task in list(front.reading):   # still sending its body: no model work is lost
    task.cancel()
  connections.pre_shutdown()         # idle connections close; busy ones after their answer
  await connections.shutdown(SHUTDOWN_SECONDS)
  front.pool.shutdown(wait=True)


def serve(args) -> int:
  limits = Limits(header_timeout=args.header_timeout_seconds,
                  body_timeout=args.body_timeout_seconds,
                  send_timeout=args.send_timeout_seconds,
                  keepalive_timeout=args.keepalive_timeout_seconds,
                  max_connections=args.max_connections, max_header_bytes=args.max_header_bytes,
                  max_request_bytes=args.max_request_bytes,
                  max_buffered_bytes=args.max_buffered_bytes)
  raise_fd_limit(limits.max_connections + 256)
  manager = ModelManager(args.model_name, args.model_base_path)
  asyncio.run(_serve(args, manager, limits))
  _LOG.info("server stopped cleanly")
  return 0


def main(argv=None) -> int:
  d = Limits()
  p = argparse.ArgumentParser(description="A stand-in for tensorflow_model_server's REST API.")
  p.add_argument("--model_base_path", required=True)
  p.add_argument("--model_name", default="default")
  p.add_argument("--rest_api_port", type=int, default=8501, help="0 picks a free port")
  p.add_argument("--host", default="127.0.0.1",
                 help="address to bind; 0.0.0.0 exposes the server to the network")
  p.add_argument("--rest_api_num_threads", type=int, default=max(16, 4 * (os.cpu_count() or 2)),
                 help="model calls at once (TF Serving's default is 4 per core); reading and "
                      "writing requests takes none of these threads")
  p.add_argument("--max_inflight", type=int, default=None,
                 help="predictions admitted at once, running or waiting for a model thread; "
                      "more are answered 503 UNAVAILABLE at once (default: 2 x "
                      "--rest_api_num_threads, one running and one waiting per thread)")
  p.add_argument("--max_batch_size", type=int, default=admission.max_batch_size(),
                 help="examples in one request; more are answered 400, as TF Serving with "
                      "--batching_parameters_file (default: serving/batching.config's)")
  p.add_argument("--rest_api_timeout_in_ms", type=int, default=admission.DEFAULT_TIMEOUT_MS,
                 help="a prediction not answered within this, from its admission, is cancelled "
                      "and answered 504 DEADLINE_EXCEEDED (TF Serving's flag and default)")
  p.add_argument("--max_request_bytes", type=int, default=d.max_request_bytes,
                 help="largest request body; larger ones are answered 400")
  p.add_argument("--max_buffered_bytes", type=int, default=d.max_buffered_bytes,
                 help="request bodies held in memory at once, all together; beyond, 503")
  p.add_argument("--max_header_bytes", type=int, default=d.max_header_bytes,
                 help="request line and headers; larger ones are answered 431")
  p.add_argument("--max_connections", type=int, default=d.max_connections,
                 help="open connections; more are answered 503 and closed")
  p.add_argument("--header_timeout_seconds", type=float, default=d.header_timeout,
                 help="the request line and headers must arrive within this, else 408")
  p.add_argument("--body_timeout_seconds", type=float, default=d.body_timeout,
                 help="the whole request body must arrive within this, else 408")
  p.add_argument("--send_timeout_seconds", type=float, default=d.send_timeout,
                 help="the client must take the whole answer within this, else it is cut off")
  p.add_argument("--keepalive_timeout_seconds", type=float, default=d.keepalive_timeout,
                 help="an idle keep-alive connection is closed after this")
  p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                 help="how often to look for a newer version; 0 turns it off")
  p.add_argument("--verbose", action="store_true", help="log every request")
  args = p.parse_args(argv)
  if args.max_inflight is None:
    args.max_inflight = 2 * args.rest_api_num_threads
  logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  return serve(args)


if __name__ == "__main__":
  sys.exit(main())
