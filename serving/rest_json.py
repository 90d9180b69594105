"""TF Serving's REST JSON for :predict, both ways: request body -> input arrays, and output
arrays -> response body, with TF Serving's error messages and status codes.

Kept apart from the HTTP plumbing (serving/server.py) so that the format rules, which are the
subtle part, can be read against TF Serving's documentation (g3doc/api/api_rest.md) and its
json_tensor.cc in one place:

  * "instances" (row format): a non-empty list, one item per example; an item is the value of
    the only input, or an object {input name: value} when items are objects. Answer:
    {"predictions": [...]}, one item per example (an object per example when there are several
    outputs).
  * "inputs" (columnar format): the whole batch as one value (single input) or an object of
    them. Answer: {"outputs": value or object}.
  * exactly one of the two keys; an optional "signature_name" string.
  * string tensors take JSON strings (UTF-8) or {"b64": "..."}; string outputs whose name
    ends in "_bytes" come back as {"b64": "..."}.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import json

import numpy as np

# TensorFlow status code names -> HTTP status, as TF Serving's http_server.cc maps them.
HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}
ROW, COLUMNAR = "row", "columnar"
MAX_RANK = 64                         # NumPy's most dimensions (NPY_MAXDIMS)


class RestError(Exception):
  """An error TF Serving would answer as {"error": message} with the code's HTTP status."""

  def __init__(self, code: str, message: str):
    super().__init__(message)
    self.code = code
    self.message = message

  @property
  def http_status(self) -> int:
    return HTTP_STATUS.get(self.code, 500)


def invalid(message: str) -> RestError:
  return RestError("INVALID_ARGUMENT", message)


@dataclasses.dataclass(frozen=True)
class TensorSpec:
  """What the codec needs of a signature's input or output: name, NumPy dtype, shape."""
  name: str
  dtype: np.dtype          # np.dtype(object) for strings
  shape: tuple             # None for unknown dims

  @property
  def is_string(self) -> bool:
    return self.dtype == np.dtype(object)


def max_json_values(inputs: dict[str, TensorSpec], batch: int) -> int | None:
  """The most JSON values (numbers, strings, lists, objects and their keys) that a request of
  `batch` examples to a signature with these inputs can need, in either format; None when an
  input has a dimension of unknown size (then only the body's size bounds the request)."""
  total = 8                                     # the document, its keys, "signature_name"
  for spec in inputs.values():
    if spec.shape is None or any(d is None for d in spec.shape[1:]):
      return None
    leaves, lists = 1, 0
    for d in spec.shape[1:]:                    # one example: its nested lists and its leaves
      lists, leaves = lists + leaves, leaves * d
    total += batch * (leaves + lists + 3)       # + its key, its object, a {"b64": ...} object
  return total


def count_json_values(body: bytes) -> int:
  """An upper bound on the values and keys of a JSON document, without parsing it: each one
  but the first follows a '[', '{', ',' or ':' (inside strings these overcount)."""
  return 1 + sum(body.count(c) for c in (b"[", b"{", b",", b":"))


def parse_json(body: bytes, max_values: int | None = None) -> dict:
  """The request document; past `max_values` (count_json_values) it is refused unparsed."""
  if not body:
    raise invalid("JSON Parse error: The document is empty")
  if max_values is not None and (count := count_json_values(body)) > max_values:
    raise invalid(f"Request of about {count} JSON values, more than the {max_values} that "
                  "--max_batch_size examples of this model's signatures can hold; refused "
                  "before parsing")
  try:
    doc = json.loads(body)
  except (ValueError, UnicodeDecodeError) as e:
    offset = getattr(e, "pos", 0)
    raise invalid(f"JSON Parse error: Invalid value. at offset: {offset}") from None
  except RecursionError:
    raise invalid("JSON Parse error: The document is nested too deeply") from None
  if not isinstance(doc, dict):
    raise invalid("Is not object")
  return doc


def signature_name(doc: dict) -> str:
  name = doc.get("signature_name", "")
  if not isinstance(name, str):
    raise invalid("'signature_name' key must be a string value.")
  return name


def _is_b64(value) -> bool:
  return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _decode_leaf(value, spec: TensorSpec):
  if spec.is_string:
    if _is_b64(value):
      if not isinstance(value["b64"], str):
        raise invalid("JSON Value: b64 value must be a string")
      try:
        return base64.b64decode(value["b64"], validate=True)
      except (binascii.Error, ValueError):
        raise invalid(f"Unable to base64 decode: {value['b64'][:40]!r}") from None
    if isinstance(value, str):
      return value.encode("utf-8")
    raise invalid(f"JSON Value: {_preview(value, 80)} not formatted correctly for "
                  "base64 data")
  if isinstance(value, (dict, str)) or value is None:
    raise invalid(f"JSON Value: {_preview(value, 80)} Type: {type(value).__name__} is not "
                  f"of expected type: {spec.dtype.name}")
  return value


def _preview(value, length: int) -> str:
  """The start of a value as JSON, for an error message (a value nested past Python's
  recursion limit is not printed)."""
  try:
    return json.dumps(value)[:length]
  except RecursionError:
    return "(nested too deeply to show)"


def _to_array(value, spec: TensorSpec, rank: int | None) -> np.ndarray:
  """A JSON value (scalar or nested lists) -> ndarray of the spec's dtype; lists nested deeper
  than `rank` (NumPy's MAXDIMS when unknown) are refused before they are walked."""
  limit = MAX_RANK if rank is None else rank

  def walk(v, depth):
    if isinstance(v, list):
      if depth == limit:
        raise invalid(f"input '{spec.name}' has lists nested deeper than its rank, {limit}")
      return [walk(x, depth + 1) for x in v]
    return _decode_leaf(v, spec)
  data = walk(value, 0)
  try:
    if spec.is_string:
      arr = np.array(data, dtype=object)
      if any(not isinstance(x, bytes) for x in arr.reshape(-1)):
        raise ValueError("ragged")
    else:
      arr = np.asarray(data, dtype=spec.dtype)
  except (ValueError, TypeError, OverflowError):
    raise invalid(f"Failed to parse input '{spec.name}': lists must be rectangular and hold "
                  f"{spec.dtype.name} values") from None
  return arr


def _check_shape(arr: np.ndarray, spec: TensorSpec) -> np.ndarray:
  if spec.shape is None:
    return arr
  if arr.ndim != len(spec.shape) or any(
      d is not None and d != a for d, a in zip(spec.shape, arr.shape)):
    raise invalid(f"input '{spec.name}' has shape {list(arr.shape)}, the signature expects "
                  f"{[-1 if d is None else d for d in spec.shape]}")
  return arr


def parse_predict(doc: dict, inputs: dict[str, TensorSpec],
                  max_batch_size: int | None = None) -> tuple[dict, str]:
  """-> ({input name: ndarray}, ROW or COLUMNAR); RestError for whatever TF Serving refuses,
  a batch of more than max_batch_size examples included (before any array is built)."""
  has_instances, has_inputs = "instances" in doc, "inputs" in doc
  if has_instances and has_inputs:
    raise invalid("Not formatted correctly expecting only one of 'inputs' or 'instances' keys "
                  "to exist ")
  if has_instances:
    _check_batch(doc["instances"], max_batch_size)
    return _parse_instances(doc["instances"], inputs), ROW
  if has_inputs:
    value = doc["inputs"]
    columns = value.values() if isinstance(value, dict) and not _is_b64(value) else [value]
    for column in columns:
      _check_batch(column, max_batch_size)
    return _parse_inputs(value, inputs), COLUMNAR
  raise invalid("Missing 'inputs' or 'instances' key")


def _check_batch(value, max_batch_size: int | None) -> None:
  """TF Serving's batching refuses a task larger than its max_batch_size, with this message."""
  if max_batch_size is not None and isinstance(value, list) and len(value) > max_batch_size:
    raise invalid(f"Task size {len(value)} is larger than maximum input batch size "
                  f"{max_batch_size} (--max_batch_size; send the examples in several requests)")


def _parse_instances(instances, inputs: dict[str, TensorSpec]) -> dict:
  if not isinstance(instances, list):
    raise invalid("Excepting 'instances' to be an list/array")
  if not instances:
    raise invalid("No values in 'instances' array")
  objects = isinstance(instances[0], dict) and not _is_b64(instances[0])
  if not objects and len(inputs) > 1:
    raise invalid("instances is a plain list, but expecting list of objects as multiple input "
                  "tensors required as per tensorinfo_map")
  columns = {name: [] for name in inputs}
  for i, item in enumerate(instances):
    item_is_object = isinstance(item, dict) and not _is_b64(item)
    if objects != item_is_object:
      raise invalid(f"Expecting {'object' if objects else 'value/list'} but got "
                    f"{'object' if item_is_object else 'list'} at item {i} of input list")
    values = item if objects else {next(iter(inputs)): item}
    if set(values) != set(inputs):
      raise invalid(f"Failed to process element: {i} of 'instances' list. JSON object: "
                    f"{_preview(item, 200)} must only have keys: {','.join(sorted(inputs))}")
    for name, value in values.items():
      columns[name].append(value)
  out = {}
  for name, spec in inputs.items():
    per_item = [_to_array(v, spec, _rank(spec, batched=False)) for v in columns[name]]
    first = per_item[0].shape
    for i, a in enumerate(per_item):
      if a.shape != first:
        raise invalid(f"Failed to process element: {i} key: {name} of 'instances' list. "
                      f"Error: Expecting shape {list(first)} but got: {list(a.shape)}")
    out[name] = _check_shape(np.stack(per_item), spec)
  return out


def _parse_inputs(value, inputs: dict[str, TensorSpec]) -> dict:
  if not isinstance(value, dict) or _is_b64(value):
    if len(inputs) > 1:
      raise invalid("inputs is a plain value/list, but expecting an object as multiple input "
                    "tensors required as per tensorinfo_map")
    name, spec = next(iter(inputs.items()))
    return {name: _check_shape(_to_array(value, spec, _rank(spec)), spec)}
  out = {}
  for name, spec in inputs.items():
    if name not in value:
      raise invalid(f"Missing named input: {name} in 'inputs' object.")
    out[name] = _check_shape(_to_array(value[name], spec, _rank(spec)), spec)
  return out


def _rank(spec: TensorSpec, batched: bool = True) -> int | None:
  """How deep a value of this input may nest lists: its rank (less the batch dimension for one
  example of the row format), or None when the signature does not say."""
  if spec.shape is None:
    return None
  return max(0, len(spec.shape) - (0 if batched else 1))


def _encode(arr: np.ndarray, name: str):
  """ndarray -> JSON-able nested lists; strings as {"b64"} when the name ends in _bytes."""
  if arr.dtype == object or arr.dtype.kind in "SU":
    b64 = name.endswith("_bytes")

    def one(x):
      x = x if isinstance(x, bytes) else str(x).encode("utf-8")
      if b64:
        return {"b64": base64.b64encode(x).decode("ascii")}
      try:
        return x.decode("utf-8")
      except UnicodeDecodeError:
        raise RestError("INVALID_ARGUMENT", f"Failed to encode output '{name}': not valid UTF-8; "
                        "name the output with a '_bytes' suffix to get base64") from None
    return np.frompyfunc(one, 1, 1)(arr).tolist() if arr.ndim else one(arr[()])
  return arr.tolist()


def format_predict(outputs: dict[str, np.ndarray], fmt: str) -> bytes:
  """Output arrays -> TF Serving's response body for the request's format."""
  names = sorted(outputs)
  if fmt == COLUMNAR:
    body = {name: _encode(outputs[name], name) for name in names}
    return json.dumps({"outputs": body[names[0]] if len(names) == 1 else body}).encode()
  sizes = {outputs[n].shape[0] if outputs[n].ndim else None for n in names}
  if len(sizes) != 1 or None in sizes:
    raise invalid("Tensor name: outputs have inconsistent batch sizes for the 'instances' "
                  "(row) format; use 'inputs' (columnar) instead")
  encoded = {name: _encode(outputs[name], name) for name in names}
  if len(names) == 1:
    predictions = encoded[names[0]]
  else:
    predictions = [{n: encoded[n][i] for n in names} for i in range(sizes.pop())]
  return json.dumps({"predictions": predictions}).encode()


def error_body(message: str) -> bytes:
  return json.dumps({"error": message}).encode()
