"""serving/batching.config, the batching parameters file the Dockerfile gives
tensorflow_model_server (--enable_batching --batching_parameters_file), and the stand-in's reading
of it.

The file is parsed here as TF Serving parses it: protobuf text format into its BatchingParameters
message (tensorflow_serving/servables/tensorflow/session_bundle_config.proto, TF Serving 2.20).
The tensorflow-serving-api package does not ship that message, so BATCHING_PARAMETERS declares
its fields here as the .proto does (name, number, type): a misspelt field, a value of the wrong
type, or a bare number where TF Serving wants its wrapper ({ value: N }) fails to parse here, as
it would stop tensorflow_model_server from starting.
"""
import base64
import json

import pytest
import requests

from serving import admission
from tests import serving_support as support

# (name, number, type, wrapper message or None, repeated)
BATCHING_PARAMETERS = (
    ("max_batch_size", 1, "message", "Int64Value", False),
    ("batch_timeout_micros", 2, "message", "Int64Value", False),
    ("max_enqueued_batches", 3, "message", "Int64Value", False),
    ("num_batch_threads", 4, "message", "Int64Value", False),
    ("thread_pool_name", 5, "message", "StringValue", False),
    ("allowed_batch_sizes", 6, "int64", None, True),
    ("pad_variable_length_inputs", 7, "bool", None, False),
)


def batching_parameters_class():
  """tensorflow.serving.BatchingParameters, built from BATCHING_PARAMETERS."""
  from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2
  pool = descriptor_pool.DescriptorPool()
  wrappers = descriptor_pb2.FileDescriptorProto()
  wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
  pool.Add(wrappers)
  proto = descriptor_pb2.FileDescriptorProto(
      name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
      package="tensorflow.serving", syntax="proto3",
      dependency=["google/protobuf/wrappers.proto"])
  message = proto.message_type.add(name="BatchingParameters")
  types = descriptor_pb2.FieldDescriptorProto
  for name, number, kind, wrapper, repeated in BATCHING_PARAMETERS:
    field = message.field.add(name=name, number=number,
                              label=types.LABEL_REPEATED if repeated else types.LABEL_OPTIONAL)
    field.type = {"message": types.TYPE_MESSAGE, "int64": types.TYPE_INT64,
                  "bool": types.TYPE_BOOL}[kind]
    if wrapper:
      field.type_name = f".google.protobuf.{wrapper}"
  pool.Add(proto)
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def parse(text: str):
  from google.protobuf import text_format
  return text_format.Parse(text, batching_parameters_class()())


@pytest.fixture(scope="module")
def shipped():
  with open(admission.BATCHING_CONFIG) as f:
    return parse(f.read())


def test_the_file_is_tf_servings_batching_parameters(shipped):
  assert shipped.HasField("max_batch_size") and shipped.max_batch_size.value >= 1
  assert shipped.num_batch_threads.value >= 1
  assert shipped.max_enqueued_batches.value >= 1
  assert shipped.HasField("batch_timeout_micros")


def test_a_misspelt_or_unwrapped_field_does_not_parse():
  """The check above can fail: TF Serving's parser refuses what it does not declare."""
  from google.protobuf import text_format
  with pytest.raises(text_format.ParseError, match="max_batch_sizes"):
    parse("max_batch_sizes { value: 4 }")
  with pytest.raises(text_format.ParseError):
    parse("max_batch_size: 4")                   # a wrapper message, not a bare number


@pytest.mark.parametrize("text", [
    "max_batch_size { value: 8 }",
    "# a comment\nnum_batch_threads { value: 2 }\nmax_batch_size {\n  value: 8\n}\n",
    "max_batch_size: { value: 8 }",
    "max_batch_size <value: 8>",
])
def test_the_stand_in_reads_max_batch_size_as_tf_serving_does(text, tmp_path):
  path = tmp_path / "batching.config"
  path.write_text(text)
  assert admission.max_batch_size(str(path)) == parse(text).max_batch_size.value == 8


def test_a_file_without_max_batch_size_is_refused(tmp_path):
  path = tmp_path / "batching.config"
  path.write_text("num_batch_threads { value: 4 }\n")
  with pytest.raises(ValueError, match="no max_batch_size"):
    admission.max_batch_size(str(path))


def test_the_stand_in_s_default_max_batch_size_is_the_file_s(shipped, untrained_server):
  """The run's server has no --max_batch_size flag: it refuses a request of one example more
  than the file's max_batch_size with TF Serving's 400, and takes one of exactly that many."""
  limit = shipped.max_batch_size.value
  page = {"b64": base64.b64encode(support.png_bytes(support.task_page(40, 30)[0])).decode()}

  def post(n: int) -> requests.Response:
    return requests.post(f"{untrained_server.url}/v1/models/koala:predict",
                         data=json.dumps({"instances": [page] * n}), timeout=120)
  assert post(limit).status_code == 200
  r = post(limit + 1)
  assert r.status_code == 400
  assert r.json()["error"].startswith(
      f"Task size {limit + 1} is larger than maximum input batch size {limit}"), r.text[:300]
