"""Admission for serving.server: how many predictions may be in flight, how many examples one
may carry, and how long one may take, as TF Serving bounds them.

Why a module of its own: these are the promises a client can count on (docs/serving.md's table),
and each has to hold at the right moment to mean anything:

  * `Slots`: a prediction takes its slot on the event loop, once its body is read and before it
    waits for a model thread, and gives it back when its model work has really ended (not when
    its answer was sent). So --max_inflight counts the requests queued for a thread as well as
    the running ones, and a burst past it is answered 503 at once, as TF Serving's full batching
    queue answers, instead of queueing behind --rest_api_num_threads.
  * `max_batch_size`: TF Serving run with serving/batching.config refuses a request of more
    examples than its max_batch_size; the stand-in reads its default from that same file.
  * `Deadline`: TF Serving's --rest_api_timeout_in_ms sets the model run's timeout (RunOptions),
    after which the run is cancelled and the answer is DEADLINE_EXCEEDED. Here a request that is
    still waiting for a thread when its deadline passes never starts, and a running SavedModel
    call is cancelled through TensorFlow's CancellationManager (it stops at its next op, e.g.
    between two pages of a batch), so the thread is free again soon after the 504.
"""
from __future__ import annotations

import contextlib
import os
import re
import threading

BATCHING_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "batching.config")
DEFAULT_TIMEOUT_MS = 30_000          # TF Serving's --rest_api_timeout_in_ms default


def max_batch_size(path: str = BATCHING_CONFIG) -> int:
  """`max_batch_size { value: N }` of a TF Serving batching parameters file (protobuf text
  format, which also allows `max_batch_size: { value: N }` and `<value: N>`)."""
  with open(path) as f:
    found = re.search(r"^\s*max_batch_size\s*:?\s*[{<]\s*value\s*:\s*(\d+)\s*[}>]", f.read(),
                      re.M)
  if not found:
    raise ValueError(f"{path}: no max_batch_size {{ value: N }}")
  return int(found.group(1))


class Slots:
  """Predictions in flight, counted across the event loop and the model threads."""

  def __init__(self, limit: int):
    self.limit = limit
    self.taken = 0
    self._lock = threading.Lock()

  def try_take(self) -> bool:
    with self._lock:
      if self.taken >= self.limit:
        return False
      self.taken += 1
      return True

  def give_back(self, *_) -> None:     # also a concurrent.futures done-callback
    with self._lock:
      self.taken -= 1

  def busy_message(self) -> str:
    return (f"The server is busy: {self.taken} predictions in flight (--max_inflight="
            f"{self.limit}); retry with backoff")


class Deadline:
  """One request's deadline: cancel() stops its model work, at the next op if it is running."""

  def __init__(self, timeout_ms: int):
    self.timeout_ms = timeout_ms
    self._manager = _cancellation_manager()
    self._cancelled = False

  @property
  def seconds(self) -> float:
    return self.timeout_ms / 1000.0

  @property
  def passed(self) -> bool:
    return self._cancelled

  def cancel(self) -> None:
    self._cancelled = True
    if self._manager is not None:
      self._manager.start_cancel()

  def message(self) -> str:
    return (f"Deadline exceeded: the prediction took more than {self.timeout_ms} ms "
            "(--rest_api_timeout_in_ms)")

  @contextlib.contextmanager
  def running(self):
    """TensorFlow calls made by this thread inside the block are cancelled by cancel()."""
    if self._manager is None:
      yield
      return
    _ACTIVE.manager = self._manager
    try:
      yield
    finally:
      _ACTIVE.manager = None


# TensorFlow reads the cancellation manager of a call from a process-wide variable
# (tensorflow.python.eager.cancellation.context(), set by its CancellationManagerContext): with
# several model threads, one request's would cancel another's. The context is made per thread
# here, falling back to TensorFlow's own where a thread has none.
_ACTIVE = threading.local()
_INSTALL = threading.Lock()


def _cancellation_manager():
  try:
    from tensorflow.python.eager import cancellation
  except ImportError:     # a TensorFlow without it: the deadline answers, the work runs out
    return None
  with _INSTALL:
    if not getattr(cancellation.context, "koala_per_thread", False):
      process_wide = cancellation.context

      def per_thread():
        return getattr(_ACTIVE, "manager", None) or process_wide()
      per_thread.koala_per_thread = True
      cancellation.context = per_thread
  return cancellation.CancellationManager()
