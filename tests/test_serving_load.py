"""Load on the stand-in server: 8 concurrent clients x 25 requests, zero errors, memory steady;
and the client's backoff when the server sheds load with 503, as TF Serving's full batching
queue does. A real server process on loopback, serving a real export (tiny embedder: the server
is under test here, not Inception's 0.3 s per page)."""
import base64
import concurrent.futures
import threading
import time

import pytest
import requests

from serving import client
from tests import serving_support as support

pytestmark = pytest.mark.slow   # hundreds of requests

CLIENTS, REQUESTS = 8, 25


@pytest.fixture(scope="module")
def page():
  return support.png_bytes(support.task_page(240, 170)[0])


def hammer(url, page, clients, requests_each):
  body = {"instances": [{"b64": base64.b64encode(page).decode()}]}
  statuses = []

  def one_client():
    with requests.Session() as s:
      return [s.post(url + "/v1/models/koala:predict", json=body, timeout=120).status_code
              for _ in range(requests_each)]

  with concurrent.futures.ThreadPoolExecutor(clients) as pool:
    for result in pool.map(lambda _: one_client(), range(clients)):
      statuses += result
  return statuses


def test_8_clients_x_25_requests_no_errors_memory_steady(untrained_server, page):
  server = untrained_server
  assert set(hammer(server.url, page, CLIENTS, 3)) == {200}       # warm up every thread
  settled = server.rss_mib()
  samples, done = [], threading.Event()

  def sample():
    while not done.wait(0.25):
      samples.append(server.rss_mib())
  threading.Thread(target=sample, daemon=True).start()
  started = time.time()
  statuses = hammer(server.url, page, CLIENTS, REQUESTS)
  done.set()
  elapsed = time.time() - started
  assert len(statuses) == CLIENTS * REQUESTS
  assert statuses.count(200) == len(statuses), {s: statuses.count(s) for s in set(statuses)}
  final = server.rss_mib()
  # Steady: no growth with the number of requests served (a leak of one page per request
  # would add tens of MiB over these 200), only the transient of pages in flight.
  assert final - settled < 80, (settled, final, max(samples or [final]))
  assert max(samples or [final]) - settled < 200
  print(f"{len(statuses)} requests in {elapsed:.1f} s; RSS {settled:.0f} -> {final:.0f} MiB")


def test_client_backs_off_on_503_and_finishes(untrained_export, page, tmp_path, capsys):
  server = support.Server(untrained_export, "koala", "--max_inflight=1", "--verbose")
  try:
    pages = tmp_path / "in"
    pages.mkdir()
    for i in range(8):
      (pages / f"{i:02d}.png").write_bytes(page)
    code = client.main([str(pages), f"--server={server.url}", f"--output_dir={tmp_path / 'out'}",
                        "--concurrency=4", "--no_progress"])
    assert code == 0, capsys.readouterr().err
    assert len(list((tmp_path / "out").glob("*.png"))) == 8
    assert '" 503 ' in server.output()        # the server did shed load, and the client retried
  finally:
    assert server.stop() == 0
