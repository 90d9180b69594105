"""Throughput of the stand-in REST server under the load test's 8 clients x 25 requests: the
event-driven server (serving/server.py, aiohttp) against the thread-per-connection one it
replaced (http.server, read from git history), measured in the same run.

  python bench/serving_load.py [--rounds=3] [--old_commit=SHA]

Both serve the same export (the serving tests' model with the tiny embedder: the server is under
test, not Inception) on loopback and get the same page (240 x 170, as tests/test_serving_load.py).
The rounds alternate old, new, old, new, ... so drifting load on a shared machine hits both
alike; the figure is the median of the rounds' pages/s, and the ratio is new / old (target
>= 0.95). Then one client's A4 page latency on each (alternating requests), and, as a reminder
of why, the status call's latency with 20 slow-body connections open, on each server (the old
one's 16 threads are all held by them).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OLD_COMMIT = "6f49128469d6bab61da097c0ae8b2dfefbacc7c8"   # the last http.server version
CLIENTS, REQUESTS = 8, 25


def old_server_module(work: str, commit: str) -> dict:
  """The old serving/server.py as the module koala_old_server; -> the env that finds it."""
  source = subprocess.run(["git", "show", f"{commit}:serving/server.py"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
  folder = os.path.join(work, "old")
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "koala_old_server.py"), "w") as f:
    f.write(source)
  return {**os.environ, "PYTHONPATH": os.pathsep.join([folder, ROOT])}


def a4_latencies(servers: dict, runs: int) -> dict:
  """One client, an A4 page (200 dpi), requests alternating between the servers: -> seconds."""
  import base64
  import requests
  from tests import serving_support as support
  page = support.png_bytes(support.task_page(2339, 1654)[0])
  body = json.dumps({"instances": [{"b64": base64.b64encode(page).decode()}]})
  sessions = {name: requests.Session() for name in servers}
  took = {name: [] for name in servers}
  for i in range(runs + 1):
    for name, server in servers.items():
      t = time.perf_counter()
      r = sessions[name].post(server.url + "/v1/models/koala:predict", data=body, timeout=300)
      assert r.status_code == 200, (name, r.text[:200])
      if i:                      # the first round warms up
        took[name].append(time.perf_counter() - t)
  return took


def status_under_slow_bodies(server, slow: int = 20, timeout: float = 10.0) -> float:
  import requests
  sockets = []
  for _ in range(slow):
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /v1/models/koala:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    sockets.append(s)
  time.sleep(1)
  t = time.perf_counter()
  try:
    requests.get(server.url + "/v1/models/koala", timeout=timeout)
    took = time.perf_counter() - t
  except requests.RequestException:
    took = float("inf")
  for s in sockets:
    s.close()
  return took


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--old_commit", default=OLD_COMMIT)
  p.add_argument("--a4_runs", type=int, default=6, help="A4 predicts per server, one client")
  args = p.parse_args(argv)
  from bench import common
  from tests import serving_support as support
  from tests.test_serving_load import hammer

  page = support.png_bytes(support.task_page(240, 170)[0])
  base = support.export_base("tiny")
  work = tempfile.mkdtemp(prefix="koala-bench-load-")
  servers = {"old (http.server)": support.Server(base, "koala", module="koala_old_server",
                                                  env=old_server_module(work, args.old_commit)),
             "new (aiohttp)": support.Server(base, "koala")}
  rates = {name: [] for name in servers}
  try:
    for server in servers.values():
      assert set(hammer(server.url, page, CLIENTS, 3)) == {200}      # warm up
    for _ in range(args.rounds):
      for name, server in servers.items():
        t = time.perf_counter()
        statuses = hammer(server.url, page, CLIENTS, REQUESTS)
        rates[name].append(len(statuses) / (time.perf_counter() - t))
        assert statuses.count(200) == len(statuses), (name, set(statuses))
    a4 = a4_latencies(servers, args.a4_runs)
    slow = {name: status_under_slow_bodies(server) for name, server in servers.items()}
  finally:
    for server in servers.values():
      server.stop()
  old, new = (statistics.median(rates[n]) for n in servers)
  with open("/proc/loadavg") as f:
    load = " ".join(f.read().split()[:3])
  print(f"machine: {common.machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"load average {load}")
  for name in servers:
    print(f"{name}: {CLIENTS} x {REQUESTS} requests, pages/s per round "
          f"{', '.join(f'{r:.1f}' for r in rates[name])}; median {statistics.median(rates[name]):.1f}")
  print(f"throughput ratio new / old: {new / old:.2f} (target >= 0.95)")
  a4_old, a4_new = (statistics.median(a4[n]) for n in servers)
  print(f"A4 page, one client (tiny embedder: decode, page ops, PNG, base64 JSON): old p50 "
        f"{a4_old:.3f} s, new p50 {a4_new:.3f} s, new / old {a4_new / a4_old:.2f}")
  for name, took in slow.items():
    print(f"{name}: status call with 20 slow-body connections open: "
          + (f"{took * 1000:.0f} ms" if took != float("inf") else "no answer within 10 s"))
  return 0


if __name__ == "__main__":
  sys.exit(main())
