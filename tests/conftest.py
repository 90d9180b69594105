"""What the tests share within one run: the trained models, the exports and the servers, built once
per test session as session fixtures (the builders are tests/serving_support.py's), and the rule
that puts a test in the slow tier.

Why session fixtures: one trained gray job, one manga job and one export per kind serve every
module that needs them, and one server per export kind serves every test that can share it (a
test that needs other server flags starts its own). A build runs in the setup of the first test
that asks for it, and pytest.ini's per-test timeout counts test functions only
(`timeout_func_only`): a build that takes minutes on a loaded machine is not charged to
whichever test happened to ask first. Each build bounds its own waits (a server's start, a
subprocess's timeout). A build that fails is reported as that one error by every test that needs
it; nothing is half-built and retried into a folder the failed attempt left behind.

The tiers: `pytest -m "not slow"` is the fast loop; `make test` (CI) runs everything. A test is
slow when it needs one of SLOW_FIXTURES (training, the Inception export, what is built on them)
or is marked `slow` itself (the demo, the TF 2.20 runtime, Chromium, long Beam runs).
"""
from __future__ import annotations

import os

import pytest

from tests import serving_support as support

# Builds of a minute or more on 2 cores: a test that needs any of them is in the slow tier.
SLOW_FIXTURES = frozenset({"task_records", "gray_training", "gray_job", "inception_export", "saturated_export",
                           "manga_records", "manga_job", "manga_export", "inception_server",
                           "manga_server"})


def pytest_collection_modifyitems(config, items):
  for item in items:
    if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
      item.add_marker(pytest.mark.slow)


def _folder(factory, name: str) -> str:
  return str(factory.mktemp(name, numbered=True))


# --- models ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_embedder(tmp_path_factory) -> str:
  """A SavedModel feature-vector module standing in for a TF-Hub embedder (hub:<path>)."""
  return support.write_tiny_embedder(os.path.join(_folder(tmp_path_factory, "tiny"), "embedder"))


@pytest.fixture(scope="session")
def task_records(tmp_path_factory) -> str:
  """Records of the synthetic task with real Inception-ResNet-v2 (random weights) embeddings."""
  return support.write_task_records(_folder(tmp_path_factory, "task_records"))


@pytest.fixture(scope="session")
def gray_training(task_records, tmp_path_factory):
  """The one trained gray job of the run: trainer.task on task_records (serving_support's
  TASK_TRAINING) -> (job dir, the model in memory, its history). The trainer's tests read all
  three; the serving tests export the job."""
  job = _folder(tmp_path_factory, "gray_job")
  model, history = support.train_task_job(task_records, job)
  return job, model, history


@pytest.fixture(scope="session")
def gray_job(gray_training) -> str:
  return gray_training[0]


@pytest.fixture(scope="session")
def manga_records(tiny_embedder, tmp_path_factory) -> str:
  return support.write_manga_records(_folder(tmp_path_factory, "manga_records"),
                                     _folder(tmp_path_factory, "manga_art"), tiny_embedder)


@pytest.fixture(scope="session")
def manga_job(manga_records, tmp_path_factory) -> str:
  return support.train_manga_job(manga_records, _folder(tmp_path_factory, "manga_job"))


@pytest.fixture(scope="session")
def untrained_guided_job(tiny_embedder, tmp_path_factory) -> str:
  return support.save_untrained_job(_folder(tmp_path_factory, "guided_job"), True, tiny_embedder)


@pytest.fixture(scope="session")
def untrained_spec_job(tiny_embedder, tmp_path_factory) -> str:
  return support.save_untrained_job(_folder(tmp_path_factory, "spec_job"), False, tiny_embedder)


# --- exports (model base paths, version 1 in each) ---------------------------------------------

def _export(factory, job: str, kind: str, **options) -> str:
  return support.export_job(job, os.path.join(_folder(factory, "models"), kind), **options)


@pytest.fixture(scope="session")
def inception_export(gray_job, tmp_path_factory) -> str:
  """The trained gray job with Inception-ResNet-v2 (random weights) inside."""
  return _export(tmp_path_factory, gray_job, "inception")


@pytest.fixture(scope="session")
def saturated_export(gray_job, tiny_embedder, tmp_path_factory) -> str:
  job = support.save_saturated_job(gray_job, _folder(tmp_path_factory, "saturated_job"),
                                   tiny_embedder)
  return _export(tmp_path_factory, job, "saturated")


@pytest.fixture(scope="session")
def guided_export(untrained_guided_job, tmp_path_factory) -> str:
  return _export(tmp_path_factory, untrained_guided_job, "guided")


@pytest.fixture(scope="session")
def untrained_export(untrained_spec_job, tmp_path_factory) -> str:
  """A freshly initialised narrow colorizer with the tiny embedder, exported without training
  (seconds, not the minute gray_job costs), for tests of the server and of the plumbing around
  an export (REST conformance, hostile clients, load, the batch job), where which colours come
  out does not matter, and where Inception's 0.3 s per page would make hundreds of requests
  cost minutes on 2 cores."""
  return _export(tmp_path_factory, untrained_spec_job, "untrained")


@pytest.fixture(scope="session")
def manga_export(manga_job, tmp_path_factory) -> str:
  return _export(tmp_path_factory, manga_job, "manga")


# --- servers with the default flags, one per export kind ---------------------------------------

def _server(base: str):
  server = support.Server(base, "koala")
  yield server
  assert server.stop() == 0, server.output()             # SIGTERM: a clean exit, status 0


@pytest.fixture(scope="session")
def inception_server(inception_export):
  yield from _server(inception_export)


@pytest.fixture(scope="session")
def guided_server(guided_export):
  yield from _server(guided_export)


@pytest.fixture(scope="session")
def untrained_server(untrained_export):
  yield from _server(untrained_export)


@pytest.fixture(scope="session")
def manga_server(manga_export):
  yield from _server(manga_export)
