"""Stage-by-stage progress for the demo: a numbered header, a live status line, a timing.

Why not stream the tools' own output: TensorFlow, Beam and Keras print hundreds of lines
(CUDA probes, INFO logs) that would bury the few a newcomer needs. Each command's output goes
to its own log file instead, and the terminal shows one line per stage that updates in place:
the elapsed time and the latest line of that log (or a better status a stage supplies, such as
the epochs finished). Without a terminal (CI, `make demo | tee`) the line is printed at most
every HEARTBEAT_S seconds instead, when it changed. A failing stage prints its log's tail and
the log's path, never just an exit code.
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator, TextIO

HEARTBEAT_S = 20.0
TICK_S = 0.5
TAIL_BYTES = 8192
DETAIL_CHARS = 120           # of a log's last line beside a stage's elapsed time
# TensorFlow's C++ log lines (absl format: I1128 12:00:00.000 ... or I0000 00:00:...), e.g. the
# "failed call to cuInit" every process prints on a machine without a GPU: not a status.
NATIVE_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|^WARNING: All log messages before absl")


class StageFailed(RuntimeError):
  """A stage failed; the message names the stage, the reason and the log to read."""


def last_line(path: str) -> str:
  """The latest non-empty line of a log (progress bars rewrite lines with '\\r')."""
  try:
    with open(path, "rb") as f:
      f.seek(max(0, os.path.getsize(path) - TAIL_BYTES))
      text = f.read().decode("utf-8", "replace")
  except OSError:
    return ""
  for line in reversed(text.replace("\r", "\n").split("\n")):
    if line.strip() and not NATIVE_LOG.match(line.strip()):
      return " ".join(line.split())
  return ""


def tail(path: str, lines: int = 25) -> str:
  try:
    with open(path, "rb") as f:
      f.seek(max(0, os.path.getsize(path) - 4 * TAIL_BYTES))
      text = f.read().decode("utf-8", "replace").replace("\r", "\n")
  except OSError:
    return "(no log)"
  return "\n".join([l for l in text.split("\n") if l.strip()][-lines:])


class Stage:
  """One running stage; `status` (set by the caller) gives the live text, else the log's tail."""

  def __init__(self, number: int, total: int, title: str, log_path: str | None):
    self.number, self.total, self.title = number, total, title
    self.log_path = log_path
    self.status: Callable[[], str] | None = None
    self.started = time.monotonic()

  @property
  def label(self) -> str:
    return f"[{self.number}/{self.total}] {self.title}"

  def elapsed(self) -> float:
    return time.monotonic() - self.started

  def text(self) -> str:
    try:
      detail = self.status() if self.status else (last_line(self.log_path) if self.log_path else "")
    except Exception:   # a status hook must never break the demo
      detail = ""
    if len(detail) > DETAIL_CHARS:    # one progress line, whatever a library logs (TF lists
      detail = detail[:DETAIL_CHARS - 1] + "…"   # hundreds of function names in one warning)
    return f"{self.label}  {self.elapsed():5.0f} s  {detail}".rstrip()


class Progress:
  """Numbers the stages and draws their progress on `stream`."""

  def __init__(self, total: int, log_dir: str, stream: TextIO | None = None):
    self.total = total
    self.log_dir = log_dir
    self.stream = stream or sys.stdout
    self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self.number = 0
    self.timings: list[tuple[str, float]] = []
    os.makedirs(log_dir, exist_ok=True)

  def say(self, text: str = "") -> None:
    self.stream.write(text + "\n")
    self.stream.flush()

  def _draw(self, stage: Stage, stop: threading.Event) -> None:
    last_printed, last_time = None, time.monotonic()
    while not stop.wait(TICK_S):
      text = stage.text()
      if self.tty:
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r" + text[:width].ljust(width))
        self.stream.flush()
      elif time.monotonic() - last_time >= HEARTBEAT_S:
        detail = text[len(stage.label):].split("s", 1)[-1].strip()
        if detail != last_printed:
          self.say("    " + text)
          last_printed = detail
        last_time = time.monotonic()

  @contextlib.contextmanager
  def stage(self, title: str, log_name: str | None = None) -> Iterator[Stage]:
    """Runs the body as the next stage; its log (if any) is <log_dir>/<NN>_<log_name>.log."""
    self.number += 1
    log_path = (os.path.join(self.log_dir, f"{self.number:02d}_{log_name}.log")
                if log_name else None)
    stage = Stage(self.number, self.total, title, log_path)
    self.say(stage.label + " ...")
    stop = threading.Event()
    drawer = threading.Thread(target=self._draw, args=(stage, stop), daemon=True)
    drawer.start()
    ok = False
    try:
      yield stage
      ok = True
    finally:
      stop.set()
      drawer.join()
      if self.tty:
        self.stream.write("\r" + " " * (shutil.get_terminal_size((100, 20)).columns - 1) + "\r")
      elapsed = stage.elapsed()
      self.timings.append((title, elapsed))
      self.say(f"{stage.label}: {'done' if ok else 'FAILED'} in {elapsed:.0f} s"
               + (f"  (log: {log_path})" if log_path else ""))

  def run(self, stage: Stage, cmd: list[str], *, cwd: str | None = None,
          env: dict | None = None) -> None:
    """Runs one command of the stage, its output appended to the stage's log."""
    printable = printable_command(cmd)
    self.say(f"    $ {printable}")
    with open(stage.log_path, "a") as log:
      log.write(f"$ {printable}\n")
      log.flush()
      proc = subprocess.Popen(cmd, cwd=cwd, env=_child_env(env), stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
      try:
        code = proc.wait()
      except BaseException:   # Ctrl-C: do not leave the child running
        proc.terminate()
        try:
          proc.wait(10)
        except subprocess.TimeoutExpired:
          proc.kill()
          proc.wait()
        raise
    if code != 0:
      raise StageFailed(f"{stage.label} failed (exit status {code}).\n"
                        f"--- last lines of {stage.log_path} ---\n{tail(stage.log_path)}")


def printable_command(cmd: list[str]) -> str:
  """The command as a user would type it: `python`, not this machine's interpreter path."""
  shown = ["python" if i == 0 and c == sys.executable else c for i, c in enumerate(cmd)]
  return shlex.join(shown)


def _child_env(extra: dict | None) -> dict:
  env = dict(os.environ)
  env.setdefault("PYTHONUNBUFFERED", "1")    # live log lines for the status display
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
  env.update(extra or {})
  return env
