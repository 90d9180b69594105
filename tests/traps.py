"""What an attacker plants, for the tests of issue 19: tiny HTTP servers on loopback (what a
hostile or misconfigured "model server" does to the client that talks to it), and a crafted
SavedModel (a program that runs on whatever host loads it).

  * `Trap` records every request (method, path, body) and answers each with one fixed status,
    headers and body: an internal service that must never see a page, a redirect to it, or a
    server whose error body must not reach the visitor.
  * `Relay` forwards every request to a real server and counts how many predictions are in
    flight at once, so a test can see how many model runs a page starts together.

Real sockets and the standard library's http.server, nothing patched: the client under test
speaks to them exactly as it would to TF Serving.
  * `crafted_export` writes an export whose serving_default writes a marker file on the host: a
    test that finds no marker knows the export never ran.
"""
from __future__ import annotations

import dataclasses
import http.server
import os
import threading
import time

import requests


@dataclasses.dataclass
class Request:
  method: str
  path: str
  body: bytes


class _Server(http.server.ThreadingHTTPServer):
  daemon_threads = True


class _Base:
  def __init__(self, handler):
    self.server = _Server(("127.0.0.1", 0), handler)
    self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
    self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                   daemon=True)
    self.thread.start()

  def stop(self) -> None:
    self.server.shutdown()
    self.server.server_close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.stop()


class Trap(_Base):
  """Answers every request with `status`, `headers` and `body`; `requests` lists what came."""

  def __init__(self, status: int = 200, body: bytes = b"", headers: dict | None = None):
    self.requests: list[Request] = []
    trap = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        trap.requests.append(Request(self.command, self.path, self.rfile.read(length)))
        self.send_response(status)
        for name, value in (headers or {}).items():
          self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

      do_GET = do_POST = do_PUT = _answer

      def log_message(self, *args):
        pass

    super().__init__(Handler)


class Relay(_Base):
  """Forwards to `target` (a real model server); `max_predictions` is the most :predict
  requests that were in flight at once, each held `hold` seconds longer than the server took."""

  def __init__(self, target: str, hold: float = 0.0):
    self.max_predictions = 0
    self.predictions = 0
    lock = threading.Lock()
    relay = self
    in_flight = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
      def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        predict = self.path.endswith(":predict")
        if predict:
          with lock:
            in_flight[0] += 1
            relay.predictions += 1
            relay.max_predictions = max(relay.max_predictions, in_flight[0])
        try:
          r = requests.request(self.command, target + self.path, data=body or None,
                               headers={"Content-Type": "application/json"}, timeout=600)
          time.sleep(hold if predict else 0)
        finally:
          if predict:
            with lock:
              in_flight[0] -= 1
        self.send_response(r.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(r.content)))
        self.end_headers()
        self.wfile.write(r.content)

      do_GET = do_POST = _forward

      def log_message(self, *args):
        pass

    super().__init__(Handler)


def crafted_export(folder, marker) -> str:
  """What the issue's attacker planted: a SavedModel whose serving_default writes a file on the
  host (it could as well read one into its pixels) and answers with a tiny PNG; `marker`
  appears as soon as it runs. Returns the export's base folder."""
  import tensorflow as tf

  class Crafted(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes):
      with tf.control_dependencies([tf.io.write_file(str(marker), "ran on the host")]):
        png = tf.io.encode_png(tf.zeros((4, 4, 3), tf.uint8))
      return {"png_bytes": tf.fill(tf.shape(image_bytes), png)}

  module = Crafted()
  tf.saved_model.save(module, os.path.join(folder, "1"),
                      signatures={"serving_default": module.serve.get_concrete_function()})
  return str(folder)
