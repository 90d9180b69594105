"""The stand-in server against TF Serving's documented REST behaviour (g3doc/api/api_rest.md,
http_rest_api_handler.cc, json_tensor.cc, http_server.cc's status mapping), on a real server
process on a loopback port, serving a real export (with a tiny embedder, see serving_support)."""
import base64
import io
import json
import struct
import zlib

import numpy as np
import pytest
import requests
from PIL import Image

from tests import serving_support as support

MAX_BODY = 3_000_000


@pytest.fixture(scope="module")
def server(untrained_export):
  s = support.Server(untrained_export, "koala", f"--max_request_bytes={MAX_BODY}")
  yield s
  assert s.stop() == 0, s.output()            # SIGTERM: a clean exit, status 0
  assert "server stopped cleanly" in s.output()


def b64(data: bytes) -> dict:
  return {"b64": base64.b64encode(data).decode()}


@pytest.fixture(scope="module")
def page():
  return support.png_bytes(support.task_page(150, 100)[0])


def post(server, body, path="/v1/models/koala:predict", raw=False):
  data = body if raw else json.dumps(body)
  return requests.post(server.url + path, data=data, timeout=120)


def decoded_size(item):
  return Image.open(io.BytesIO(base64.b64decode(item["b64"]))).size


# --- model status and metadata -------------------------------------------------------------

def test_binds_to_loopback_by_default(server):
  assert f"Exporting HTTP/REST API at:127.0.0.1:{server.port}" in server.output()


def test_model_status(server):
  r = requests.get(server.url + "/v1/models/koala")
  assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
  assert r.json() == {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {
      "error_code": "OK", "error_message": ""}}]}


def test_model_status_of_a_version(server):
  assert requests.get(server.url + "/v1/models/koala/versions/1").json()[
      "model_version_status"][0]["version"] == "1"


def test_status_of_unknown_model_and_version_is_404(server):
  r = requests.get(server.url + "/v1/models/nope")
  assert r.status_code == 404 and r.json() == {"error": "Could not find any versions of model nope"}
  r = requests.get(server.url + "/v1/models/koala/versions/7")
  assert r.status_code == 404 and "Could not find version 7 of model koala" in r.json()["error"]


def test_missing_model_name_is_400(server):
  r = requests.get(server.url + "/v1/models")
  assert r.status_code == 400 and r.json() == {"error": "Missing model name in request."}


def test_metadata(server):
  r = requests.get(server.url + "/v1/models/koala/metadata")
  assert r.status_code == 200
  doc = r.json()
  assert doc["model_spec"] == {"name": "koala", "signature_name": "", "version": "1"}
  sigs = doc["metadata"]["signature_def"]["signature_def"]
  default = sigs["serving_default"]
  assert default["method_name"] == "tensorflow/serving/predict"
  assert default["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
  assert default["inputs"]["image_bytes"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
  assert default["outputs"]["png_bytes"]["dtype"] == "DT_STRING"
  assert set(sigs["colorize_tensors"]["inputs"]) == {"l", "embedding"}
  assert requests.get(server.url + "/v1/models/koala/versions/1/metadata").status_code == 200


# --- predict ---------------------------------------------------------------------------------

def test_row_format_with_b64(server, page):
  r = post(server, {"instances": [b64(page)]})
  assert r.status_code == 200, r.text
  (item,) = r.json()["predictions"]
  assert decoded_size(item) == (100, 150)


def test_row_format_with_named_inputs_and_a_batch_of_sizes(server, page):
  other = support.png_bytes(support.task_page(64, 90)[0])
  r = post(server, {"instances": [{"image_bytes": b64(page)}, {"image_bytes": b64(other)}]})
  assert r.status_code == 200, r.text
  assert [decoded_size(p) for p in r.json()["predictions"]] == [(100, 150), (90, 64)]


def test_columnar_format(server, page):
  r = post(server, {"inputs": [b64(page)]})
  assert r.status_code == 200, r.text
  assert list(r.json()) == ["outputs"] and decoded_size(r.json()["outputs"][0]) == (100, 150)
  r = post(server, {"inputs": {"image_bytes": [b64(page)]}})
  assert r.status_code == 200 and decoded_size(r.json()["outputs"][0]) == (100, 150)


def test_explicit_signature_names(server, page):
  r = post(server, {"signature_name": "serving_default", "instances": [b64(page)]})
  assert r.status_code == 200
  size = 56   # the test model's input size
  r = post(server, {"signature_name": "colorize_tensors", "inputs": {
      "l": np.full((1, size, size, 1), 50.0).tolist(), "embedding": np.zeros((1, 1536)).tolist()}})
  assert r.status_code == 200, r.text
  ab = np.asarray(r.json()["outputs"])
  assert ab.shape == (1, size, size, 2) and np.abs(ab).max() <= 127
  r = post(server, {"signature_name": "colorize_tensors", "instances": [{
      "l": np.full((size, size, 1), 50.0).tolist(), "embedding": np.zeros(1536).tolist()}]})
  assert r.status_code == 200 and np.asarray(r.json()["predictions"]).shape == (1, size, size, 2)


def test_versioned_predict(server, page):
  assert post(server, {"instances": [b64(page)]}, "/v1/models/koala/versions/1:predict").ok


def test_unknown_signature_is_400(server, page):
  r = post(server, {"signature_name": "nope", "instances": [b64(page)]})
  assert r.status_code == 400
  assert r.json() == {"error": 'Serving signature name: "nope" not found in signature def'}


def test_empty_body_and_invalid_json_are_400(server):
  r = post(server, b"", raw=True)
  assert r.status_code == 400 and r.json() == {"error": "JSON Parse error: The document is empty"}
  r = post(server, b"{not json", raw=True)
  assert r.status_code == 400 and r.json()["error"].startswith("JSON Parse error")
  r = post(server, b"[1, 2]", raw=True)
  assert r.status_code == 400 and r.json()["error"] == "Is not object"


def test_instances_and_inputs_together_or_neither_are_400(server, page):
  r = post(server, {"instances": [b64(page)], "inputs": [b64(page)]})
  assert r.status_code == 400 and "only one of 'inputs' or 'instances'" in r.json()["error"]
  r = post(server, {"signature_name": "serving_default"})
  assert r.status_code == 400 and r.json() == {"error": "Missing 'inputs' or 'instances' key"}


def test_unknown_model_and_version_are_404(server, page):
  r = post(server, {"instances": [b64(page)]}, "/v1/models/nope:predict")
  assert r.status_code == 404
  assert r.json() == {"error": "Servable not found for request: Latest(nope)"}
  r = post(server, {"instances": [b64(page)]}, "/v1/models/koala/versions/9:predict")
  assert r.status_code == 404 and "Specific(koala, 9)" in r.json()["error"]


def test_wrong_methods(server):
  r = requests.get(server.url + "/v1/models/koala:predict")
  assert r.status_code == 400
  assert r.json() == {"error": "Malformed request: GET /v1/models/koala:predict"}
  r = requests.delete(server.url + "/v1/models/koala")
  assert r.status_code == 400 and r.json()["error"].startswith("Malformed request: DELETE")
  assert requests.post(server.url + "/v1/models/koala").status_code == 400
  assert requests.request("TRACE", server.url + "/v1/models/koala").status_code == 501


def test_paths_outside_the_api_are_404(server):
  assert requests.get(server.url + "/").status_code == 404
  assert requests.get(server.url + "/v2/models/koala").status_code == 404


# --- bad inputs: 400 with a reason, and the server stays up ----------------------------------

def huge_png_header():
  ihdr = b"IHDR" + struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
  end = b"IEND"
  return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
          + struct.pack(">I", 0) + end + struct.pack(">I", zlib.crc32(end)))


@pytest.mark.parametrize("case", ["not an image", "truncated", "huge header", "empty instances",
                                  "oversized body", "bad base64", "ragged", "wrong dtype"])
def test_bad_inputs_are_400_and_the_server_stays_up(server, page, case):
  bodies = {
      "not an image": {"instances": [b64(b"GIF? no. just some bytes that are not an image")]},
      "truncated": {"instances": [b64(page[: len(page) // 2])]},
      "huge header": {"instances": [b64(huge_png_header())]},
      "empty instances": {"instances": []},
      "bad base64": {"instances": [{"b64": "%%%not base64%%%"}]},
      "ragged": {"signature_name": "colorize_tensors", "inputs": {"l": [[1.0], [1.0, 2.0]],
                                                                 "embedding": [[0.0]]}},
      "wrong dtype": {"signature_name": "colorize_tensors", "inputs": {"l": "text",
                                                                      "embedding": [[0.0]]}},
  }
  if case == "oversized body":
    r = post(server, b'{"instances": ["' + b"A" * (MAX_BODY + 10) + b'"]}', raw=True)
  else:
    r = post(server, bodies[case])
  assert r.status_code == 400, (case, r.status_code, r.text[:300])
  assert r.json()["error"]
  if case == "huge header":
    assert "Image too large" in r.json()["error"]
  if case == "oversized body":
    assert "exceeds the limit" in r.json()["error"]
  assert requests.get(server.url + "/v1/models/koala").status_code == 200
  assert post(server, {"instances": [b64(page)]}).status_code == 200


# --- hostile documents: 400 or 404 with a reason, never a 500 -------------------------------

DEEP = 100_000


@pytest.mark.parametrize("case", ["lists 100,000 deep", "objects 100,000 deep",
                                  "lists deeper than the input's rank", "version of 5,000 digits",
                                  "version past int64", "status of a 5,000-digit version"])
def test_deep_json_and_absurd_versions_are_refused_without_a_traceback(server, page, case):
  if case == "lists 100,000 deep":
    r = post(server, b'{"instances": ' + b"[" * DEEP + b"]" * DEEP + b"}", raw=True)
  elif case == "objects 100,000 deep":
    r = post(server, b'{"instances": [' + b'{"a": ' * DEEP + b"1" + b"}" * DEEP + b"]}", raw=True)
  elif case == "lists deeper than the input's rank":   # within Python's recursion limit
    r = post(server, {"signature_name": "colorize_tensors",
                      "inputs": {"l": json.loads("[" * 500 + "]" * 500),
                                 "embedding": [[0.0] * 1536]}})
  elif case == "version of 5,000 digits":
    r = post(server, {"instances": [b64(page)]}, f"/v1/models/koala/versions/{'9' * 5000}:predict")
  elif case == "version past int64":
    r = post(server, {"instances": [b64(page)]}, f"/v1/models/koala/versions/{2 ** 63}:predict")
  else:
    r = requests.get(f"{server.url}/v1/models/koala/versions/{'9' * 5000}", timeout=30)
  assert r.status_code in (400, 404), (case, r.status_code, r.text[:300])
  assert r.json()["error"]
  if "version" in case:
    assert r.json()["error"].startswith("Failed to convert version: ") and len(r.text) < 300
  if "rank" in case:
    assert "nested deeper than its rank, 4" in r.json()["error"]
  assert "Traceback" not in server.output() and "internal error" not in server.output()
  assert requests.get(f"{server.url}/v1/models/koala/versions/{2 ** 62}").status_code == 404
  assert post(server, {"instances": [b64(page)]}).status_code == 200


def test_a_request_of_more_examples_than_max_batch_size_is_400(server, page):
  """serving/batching.config's max_batch_size (4) is the default, as TF Serving run with it
  refuses a larger task; in both formats, and for the tensor signature too (whose five
  examples hold more numbers than four may: refused before they are parsed)."""
  assert post(server, {"instances": [b64(page)] * 4}).status_code == 200
  for body in ({"instances": [b64(page)] * 5}, {"inputs": [b64(page)] * 5},
               {"inputs": {"image_bytes": [b64(page)] * 5}}):
    r = post(server, body)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"].startswith("Task size 5 is larger than maximum input batch size 4")
  tensors = {"signature_name": "colorize_tensors", "inputs": {
      "l": np.zeros((5, 56, 56, 1)).tolist(), "embedding": np.zeros((5, 1536)).tolist()}}
  r = post(server, tensors)
  assert r.status_code == 400 and "--max_batch_size" in r.json()["error"], r.text[:300]
