"""The HTTP side of serving.server: reads requests on aiohttp's event loop, admits predictions,
runs the model work on the bounded thread pool, writes the answers.

Why apart from the model side: a client that is slow to send or to read costs a socket and a few
kilobytes here, never a model thread; and every bound a client meets is applied here, in the
order that keeps memory bounded: the body's size and deadline while it is read
(`bounded_http.Limits`), then an in-flight slot before the request may wait for a thread, then
the deadline of its model work (`serving.admission`). The App (serving.server) only ever sees
whole bodies of admitted requests.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import re

from aiohttp import http_exceptions, web

from serving import rest_json
from serving.admission import Deadline, Slots
from serving.bounded_http import SERVER_NAME, BoundedProtocol, Limits

V1_PATH = re.compile(r"(?i)/v1/.*")
# libevent lets these through to TF Serving's handler; it answers 501 to any other method.
LIBEVENT_METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH")
LINGER_SECONDS = 2.0          # after an early answer (400, 408), read and drop what still comes
SHUTDOWN_SECONDS = 60.0       # SIGTERM: how long requests in flight may take to finish
HTML_404 = b"<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD></HTML>"
HTML_501 = b"<HTML><HEAD><TITLE>501 Not Implemented</TITLE></HEAD></HTML>"


class _Refusal(Exception):
  """An answer to send at once, without the model: (status, message, close the connection)."""

  def __init__(self, status: int, message: str, close: bool = True):
    super().__init__(message)
    self.status, self.message, self.close = status, message, close


class HttpFront:
  """Reads requests on the event loop, runs the model work on the pool, writes the answers.

  app.handle(method, path, body, deadline) -> (status, payload) is the model side; a POST runs
  it on the pool, once a slot of `slots` is taken, under a Deadline of `timeout_ms`."""

  def __init__(self, app, limits: Limits, threads: int, slots: Slots, timeout_ms: int):
    self.app = app
    self.limits = limits
    self.slots = slots
    self.timeout_ms = timeout_ms
    self.pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="model")
    self.buffered = 0                                   # body bytes held, all requests
    self.reading: set[asyncio.Task] = set()             # requests still reading their body

  async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
    protocol = request.protocol
    if isinstance(protocol, BoundedProtocol):
      protocol.headers_complete()
    held = [0]
    try:
      try:
        status, payload, content_type, close = await self._answer(request, held)
      except ConnectionError:   # the client went away while sending: nobody to answer
        raise asyncio.CancelledError() from None
      except _Refusal as e:
        status, payload, content_type, close = (e.status, rest_json.error_body(e.message),
                                                "application/json", e.close)
      response = web.Response(status=status, body=payload, content_type=content_type,
                              headers={"Server": SERVER_NAME})
      if close:
        response.force_close()
      try:
        async with asyncio.timeout(self.limits.send_timeout):
          await response.prepare(request)
          await response.write_eof()
      except TimeoutError:   # a client that does not read its answer: cut it off
        if request.transport is not None:
          request.transport.abort()
      except ConnectionError:   # gone already; aiohttp notes it and closes
        pass
      return response
    finally:
      self.buffered -= held[0]
      # A body left unread (an early answer) is drained by aiohttp and the connection closed;
      # only after a whole request do the next bytes start the next one.
      if isinstance(protocol, BoundedProtocol) and request.content.is_eof():
        protocol.request_done()

  async def _answer(self, request: web.BaseRequest, held: list) -> tuple[int, bytes, str, bool]:
    method = request.method
    path = request.raw_path.split("?", 1)[0]
    if method not in LIBEVENT_METHODS:
      return 501, HTML_501, "text/html", True
    if not V1_PATH.fullmatch(path):
      return 404, HTML_404, "text/html", False
    body = await self._read_body(request, held)
    if method == "POST":   # JSON, base64 and the model: on the pool, never on the event loop
      status, payload = await self._admitted(method, path, body)
    else:                  # status and metadata: small, answered at once
      status, payload = self.app.handle(method, path, bytes(body))
    return status, payload, "application/json", False

  async def _admitted(self, method: str, path: str, body: bytearray) -> tuple[int, bytes]:
    """The model work, once a slot is taken (else 503 at once), within the deadline (else 504).
    The slot is given back when the work has ended, not when the answer goes."""
    if not self.slots.try_take():
      raise _Refusal(503, self.slots.busy_message(), close=False)
    deadline = Deadline(self.timeout_ms)
    try:
      work = self.pool.submit(self.app.handle, method, path, body, deadline)
    except RuntimeError:      # the pool is shut down: SIGTERM arrived meanwhile
      self.slots.give_back()
      raise _Refusal(503, "The server is shutting down; retry elsewhere") from None
    work.add_done_callback(self.slots.give_back)
    try:
      async with asyncio.timeout(deadline.seconds):
        return await asyncio.wrap_future(work)   # cancelled with it if it has not started
    except TimeoutError:
      deadline.cancel()
      error = rest_json.RestError("DEADLINE_EXCEEDED", deadline.message())
      return error.http_status, rest_json.error_body(error.message)
    except asyncio.CancelledError:   # nobody is waiting for the answer any more
      deadline.cancel()
      raise

  async def _read_body(self, request: web.BaseRequest, held: list) -> bytearray:
    limits = self.limits
    length = request.content_length
    if length is not None and length > limits.max_request_bytes:
      raise _Refusal(400, self._too_large(length))
    if request.headers.get("Expect", "").lower() == "100-continue" and request.version >= (1, 1):
      await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
      request.writer.output_size = 0
    body = bytearray()
    task = asyncio.current_task()
    self.reading.add(task)
    try:
      async with asyncio.timeout(limits.body_timeout):
        while chunk := await request.content.readany():
          if len(body) + len(chunk) > limits.max_request_bytes:
            raise _Refusal(400, self._too_large(len(body) + len(chunk)))
          if self.buffered + len(chunk) > limits.max_buffered_bytes:
            raise _Refusal(503, f"The server is busy: {self.buffered} bytes of request bodies "
                           f"held (--max_buffered_bytes={limits.max_buffered_bytes}); retry "
                           "with backoff")
          self.buffered += len(chunk)
          held[0] += len(chunk)
          body += chunk
    except TimeoutError:
      raise _Refusal(408, f"the request body did not arrive within {limits.body_timeout:g} s "
                     "(--body_timeout_seconds)") from None
    except http_exceptions.HttpProcessingError as e:   # a malformed chunked body, say
      raise _Refusal(400, f"Malformed request body: {e.message}") from None
    finally:
      self.reading.discard(task)
    return body

  def _too_large(self, length: int) -> str:
    return (f"Request body of {length} bytes exceeds the limit of "
            f"{self.limits.max_request_bytes} bytes (--max_request_bytes)")
