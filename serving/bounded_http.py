"""aiohttp's connection protocol with the bounds it lacks, for serving.server.

aiohttp reads requests on an event loop, caps header lines and closes idle keep-alive
connections, but it has no deadline for the headers (a client may trickle them forever), no
total header size, and no cap on open connections. `BoundedProtocol` adds those three, as nginx
has them (client_header_timeout 408, large_client_header_buffers, limit_conn 503), and answers
them itself, before aiohttp has a request to hand over. `Limits` holds every bound of the
server, the body ones included (serving.server applies those while reading the body).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import resource

from aiohttp import web, web_protocol

from serving import archives, rest_json

SERVER_NAME = "koala-standin"
DEFAULT_MAX_REQUEST_BYTES = archives.MAX_PAGE_BYTES   # the one page byte cap
_LOG_NAME = "serving.server"


@dataclasses.dataclass(frozen=True)
class Limits:
  """Every bound on a client, one flag each; docs/serving.md sets them next to TF Serving's."""
  header_timeout: float = 60.0           # request line + headers complete within, else 408
  body_timeout: float = 60.0             # the whole body within, else 408
  send_timeout: float = 60.0             # the whole answer taken by the client within, else cut
  keepalive_timeout: float = 75.0        # an idle keep-alive connection is closed after
  max_connections: int = 1024            # open at once; more are answered 503 and closed
  max_header_bytes: int = 16 * 1024      # request line + headers, else 431
  max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES   # one body, else 400
  max_buffered_bytes: int = 1024 ** 3    # request bodies held at once, all together, else 503


def raw_answer(status: int, reason: str, message: str) -> bytes:
  """A whole HTTP answer, for refusals made before aiohttp has a request to answer."""
  body = rest_json.error_body(message)
  return (f"HTTP/1.1 {status} {reason}\r\nServer: {SERVER_NAME}\r\n"
          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
          "Connection: close\r\n\r\n").encode() + body


class BoundedProtocol(web_protocol.RequestHandler):
  """aiohttp's connection protocol plus the bounds it does not have: the headers must arrive
  within a deadline (408) and a size (431), and connections beyond the cap get 503.

  The headers' end is found by the blank line that ends them; the deadline starts when the
  connection opens and, on a kept-alive connection, with the next request's first byte."""

  def __init__(self, manager: web.Server, *, limits: Limits, **kwargs):
    super().__init__(manager, **kwargs)
    self.limits = limits
    self.rejected = False
    self.awaiting_headers = True
    self._connections = manager
    self._head_bytes = 0
    self._head_tail = b""
    self._head_timer: asyncio.TimerHandle | None = None

  def connection_made(self, transport) -> None:
    if len(self._connections.connections) >= self.limits.max_connections:
      self.rejected = True
      transport.write(raw_answer(503, "Service Unavailable", (
          f"too many open connections (--max_connections={self.limits.max_connections}); "
          "retry with backoff")))
      transport.close()
      return
    super().connection_made(transport)
    self._start_header_deadline()

  def connection_lost(self, exc) -> None:
    self._stop_header_deadline()
    if not self.rejected:
      super().connection_lost(exc)

  def data_received(self, data: bytes) -> None:
    if self.rejected or self.transport is None:
      return
    if self.awaiting_headers:
      if self._head_timer is None:
        self._start_header_deadline()
      # A request has begun: the idle keep-alive timeout no longer applies, the header deadline
      # does (aiohttp's keep-alive check re-arms itself while its close time is ahead).
      self._next_keepalive_close_time = max(self._next_keepalive_close_time,
                                            self._head_timer.when() + 1.0)
      seen = self._head_tail + data
      end = seen.find(b"\r\n\r\n")
      size = self._head_bytes + (len(data) if end < 0 else end + 4 - len(self._head_tail))
      if size > self.limits.max_header_bytes:
        self.refuse(431, "Request Header Fields Too Large",
                    f"the request line and headers exceed {self.limits.max_header_bytes} bytes "
                    "(--max_header_bytes)")
        return
      if end < 0:
        self._head_bytes, self._head_tail = size, seen[-3:]
      else:
        self.headers_complete()
    super().data_received(data)

  def headers_complete(self) -> None:
    self.awaiting_headers = False
    self._stop_header_deadline()

  def request_done(self) -> None:
    """The next bytes start the next request (its deadline starts with the first of them)."""
    self.awaiting_headers = True
    self._head_bytes, self._head_tail = 0, b""

  def refuse(self, status: int, reason: str, message: str) -> None:
    if self.transport is not None:
      self.transport.write(raw_answer(status, reason, message))
    self.force_close()

  def _start_header_deadline(self) -> None:
    self._stop_header_deadline()
    self._head_timer = self._loop.call_later(self.limits.header_timeout, self._header_deadline)

  def _stop_header_deadline(self) -> None:
    if self._head_timer is not None:
      self._head_timer.cancel()
      self._head_timer = None

  def _header_deadline(self) -> None:
    self._head_timer = None
    if self.awaiting_headers and self._head_bytes:
      self.refuse(408, "Request Timeout", f"the request headers did not arrive within "
                  f"{self.limits.header_timeout:g} s (--header_timeout_seconds)")
    elif self.awaiting_headers:   # not a byte: an idle connection, closed without an answer
      self.force_close()


def raise_fd_limit(wanted: int) -> None:
  """Room for --max_connections sockets, within the hard limit (as nginx's worker_rlimit_nofile)."""
  soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
  if soft != resource.RLIM_INFINITY and soft < wanted:
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if new < wanted:
      logging.getLogger(_LOG_NAME).warning(
          "open files are limited to %d (hard limit): fewer than --max_connections sockets "
          "may be open at once", new)
