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
newer one when it appears (polling every --file_system_poll_wait_seconds). Requests run on a
bounded thread pool (--rest_api_num_threads); more than --max_inflight requests at once are
answered 503 UNAVAILABLE, as TF Serving's full batching queue answers, so clients back off.
Request bodies above --max_request_bytes are refused with 400 without being held in memory. It
binds to loopback unless told otherwise, and SIGTERM/SIGINT finish the requests in flight,
then exit 0. Nothing in serving/client.py depends on this module.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import http.server
import json
import logging
import os
import re
import signal
import socketserver
import sys
import threading
import time

import numpy as np

from serving import rest_json
from serving.rest_json import RestError, invalid

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
PREDICT_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)")
STATUS_PATH = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?")
V1_PATH = re.compile(r"(?i)/v1/.*")
# libevent lets these through to TF Serving's handler; it answers 501 to any other method.
LIBEVENT_METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH")
DEFAULT_SIGNATURE = "serving_default"

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

  def predict(self, signature: str, arrays: dict) -> dict:
    tf = _tf()
    fn = self.signatures[signature]
    feeds = {}
    for name, arr in arrays.items():
      spec = self.inputs[signature][name]
      feeds[name] = tf.constant(arr.tolist() if spec.is_string else arr,
                                dtype=tf.string if spec.is_string else spec.dtype)
    try:
      result = fn(**feeds)
    except tf.errors.OpError as e:
      raise RestError(_code_name(e), e.message) from None
    except (TypeError, ValueError) as e:
      raise invalid(str(e)) from None
    return {k: v.numpy() for k, v in result.items()}


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

  def __init__(self, manager: ModelManager, max_inflight: int):
    self.manager = manager
    self.max_inflight = max_inflight
    self._inflight = 0
    self._lock = threading.Lock()

  def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    try:
      return 200, self._dispatch(method, path, body)
    except RestError as e:
      return e.http_status, rest_json.error_body(e.message)
    except Exception as e:   # a bug here must still answer, as TF Serving's INTERNAL does
      _LOG.exception("internal error on %s %s", method, path)
      return 500, rest_json.error_body(f"Internal: {type(e).__name__}: {e}")

  def _dispatch(self, method: str, path: str, body: bytes) -> bytes:
    m = PREDICT_PATH.fullmatch(path) if method == "POST" else None
    if m:
      name, version, label, verb = m.groups()
      if verb.lower() != "predict":
        raise RestError("UNIMPLEMENTED", f"{verb} is not implemented by this model server; "
                        "the koala model has predict signatures only")
      return self._predict(name, _version(version), label, body)
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
    raise invalid(f"Malformed request: {method} {path}")

  def _predict(self, name: str, version: int | None, label: str | None, body: bytes) -> bytes:
    model = self.manager.get(name, version, label)
    doc = rest_json.parse_json(body)
    signature = rest_json.signature_name(doc) or DEFAULT_SIGNATURE
    if signature not in model.signatures:
      raise invalid(f'Serving signature name: "{signature}" not found in signature def')
    arrays, fmt = rest_json.parse_predict(doc, model.inputs[signature])
    with self._lock:
      if self._inflight >= self.max_inflight:
        raise RestError("UNAVAILABLE", f"The server is busy: {self._inflight} predictions in "
                        f"flight (--max_inflight={self.max_inflight}); retry with backoff")
      self._inflight += 1
    try:
      outputs = model.predict(signature, arrays)
    finally:
      with self._lock:
        self._inflight -= 1
    return rest_json.format_predict(outputs, fmt)


def _version(text: str | None) -> int | None:
  return None if text is None else int(text)


def _json(obj) -> bytes:
  return json.dumps(obj, indent=1).encode()


class _Handler(http.server.BaseHTTPRequestHandler):
  server_version = "koala-standin"
  protocol_version = "HTTP/1.1"
  timeout = 30   # an idle keep-alive connection gives its pool thread back after this

  def log_message(self, fmt, *args):
    _LOG.debug("%s " + fmt, self.address_string(), *args)

  def _reply(self, status: int, body: bytes, content_type="application/json",
             close: bool = False):
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(body)))
    if close:
      self.send_header("Connection", "close")
      self.close_connection = True
    self.end_headers()
    if self.command != "HEAD":
      self.wfile.write(body)

  def _read_body(self) -> bytes | None:
    """The body, or None (after answering 400) when it is larger than the limit."""
    limit = self.server.max_request_bytes
    if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
      chunks, total = [], 0
      while True:
        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
          self.rfile.readline()
          break
        total += size
        if total > limit:
          self._too_large(total)
          return None
        chunks.append(self.rfile.read(size))
        self.rfile.readline()
      return b"".join(chunks)
    length = int(self.headers.get("Content-Length") or 0)
    if length > limit:
      self._drain(length)
      self._too_large(length)
      return None
    return self.rfile.read(length) if length else b""

  def _drain(self, length: int) -> None:
    """Reads and drops an oversized body (up to 4x the limit), so the client sees our answer
    instead of a reset connection; memory stays at one 1 MiB buffer."""
    if length > 4 * self.server.max_request_bytes:
      return
    while length > 0:
      got = self.rfile.read(min(length, 1 << 20))
      if not got:
        break
      length -= len(got)

  def _too_large(self, length: int) -> None:
    message = (f"Request body of {length} bytes exceeds the limit of "
               f"{self.server.max_request_bytes} bytes (--max_request_bytes)")
    self._reply(400, rest_json.error_body(message), close=True)

  def _handle(self):
    path = self.path.split("?", 1)[0]
    if self.command not in LIBEVENT_METHODS:
      self._reply(501, b"<HTML><HEAD><TITLE>501 Not Implemented</TITLE></HEAD></HTML>",
                  "text/html", close=True)
      return
    if not V1_PATH.fullmatch(path):
      self._reply(404, b"<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD></HTML>", "text/html")
      return
    body = self._read_body()
    if body is None:
      return
    status, payload = self.server.app.handle(self.command, path, body)
    self._reply(status, payload)

  def handle_one_request(self):
    try:
      super().handle_one_request()
    except (ConnectionError, TimeoutError):
      self.close_connection = True

  def __getattr__(self, name):
    if name.startswith("do_"):
      return self._handle
    raise AttributeError(name)


class PooledHTTPServer(http.server.HTTPServer):
  """An HTTP server whose connections run on a bounded thread pool (memory stays bounded)."""
  daemon_threads = True
  allow_reuse_address = True

  def __init__(self, address, app: App, threads: int, max_request_bytes: int):
    self.app = app
    self.max_request_bytes = max_request_bytes
    self.pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="rest")
    super().__init__(address, _Handler)

  def process_request(self, request, client_address):
    self.pool.submit(self._work, request, client_address)

  def _work(self, request, client_address):
    try:
      self.finish_request(request, client_address)
    except Exception:   # a broken connection must not take the worker down
      self.handle_error(request, client_address)
    finally:
      self.shutdown_request(request)

  def server_close(self):
    super().server_close()
    self.pool.shutdown(wait=True)


def serve(args) -> int:
  manager = ModelManager(args.model_name, args.model_base_path)
  app = App(manager, max_inflight=args.max_inflight)
  server = PooledHTTPServer((args.host, args.rest_api_port), app, args.rest_api_num_threads,
                            args.max_request_bytes)
  stop = threading.Event()

  def on_signal(signum, _frame):
    _LOG.info("received signal %d, finishing requests in flight", signum)
    stop.set()
    threading.Thread(target=server.shutdown, daemon=True).start()

  signal.signal(signal.SIGTERM, on_signal)
  signal.signal(signal.SIGINT, on_signal)
  if args.file_system_poll_wait_seconds > 0:
    def poll():
      while not stop.wait(args.file_system_poll_wait_seconds):
        try:
          manager.refresh()
        except Exception as e:   # a half-copied version is retried on the next poll
          _LOG.warning("could not load a new version: %s", e)
    threading.Thread(target=poll, daemon=True).start()
  host, port = server.server_address[:2]
  # The same line tensorflow_model_server prints; scripts (and our tests) wait for it.
  print(f"Exporting HTTP/REST API at:{host}:{port} ...", flush=True)
  server.serve_forever(poll_interval=0.2)
  server.server_close()
  _LOG.info("server stopped cleanly")
  return 0


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description="A stand-in for tensorflow_model_server's REST API.")
  p.add_argument("--model_base_path", required=True)
  p.add_argument("--model_name", default="default")
  p.add_argument("--rest_api_port", type=int, default=8501, help="0 picks a free port")
  p.add_argument("--host", default="127.0.0.1",
                 help="address to bind; 0.0.0.0 exposes the server to the network")
  p.add_argument("--rest_api_num_threads", type=int, default=max(16, 4 * (os.cpu_count() or 2)),
                 help="connections served at once (TF Serving's default is 4 per core)")
  p.add_argument("--max_inflight", type=int, default=64,
                 help="predictions at once before answering 503 UNAVAILABLE")
  p.add_argument("--max_request_bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES)
  p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                 help="how often to look for a newer version; 0 turns it off")
  p.add_argument("--verbose", action="store_true")
  args = p.parse_args(argv)
  logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  return serve(args)


if __name__ == "__main__":
  sys.exit(main())
