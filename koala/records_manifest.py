"""The records' manifest: <records_dir>/manifest.json, what a pipeline run made and how.

pipeline.run writes it once, after every count is known; the trainer checks records against it
(trainer.input), copies its embedder into the trained model (trainer.artifacts) and combines
several runs' manifests into one (trainer.train); the demo reports it. They all go through
`RecordsManifest.from_dict` / `to_dict` (and `read` / `write` for the file), so a key is spelled
here only.

Older manifests still read: one without "rendering" describes gray records, one whose embedder
section has no "embedder_seed" takes the seed from its "options", sections or counts it lacks
read as None, and keys this version does not know are ignored.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Callable

from koala import schema
from koala.embedder import EmbedderInfo


def _known(cls, data: dict) -> dict:
  """The keys of `data` that are fields of the dataclass `cls`."""
  names = {f.name for f in dataclasses.fields(cls)}
  return {k: v for k, v in (data or {}).items() if k in names}


def _without_none(data: dict) -> dict:
  return {k: v for k, v in data.items() if v is not None}


@dataclasses.dataclass(frozen=True)
class RecordCounts:
  """What a run counted. `written` counts records per split (with several renderings an image,
  images = records / renderings per image); a combined manifest (trainer.train) keeps only
  `written`, so the other counts may be None."""
  written: dict[str, int] = dataclasses.field(default_factory=dict)
  inputs: int | None = None
  rejected: int | None = None
  skipped_gray: int | None = None
  duplicates: int | None = None

  def total_written(self) -> int:
    return sum(self.written.values())


@dataclasses.dataclass(frozen=True)
class RecordsRendering:
  """What the model will see: `kind` is the --render flag, `name` the rendering the records
  carry (koala.schema.GRAY or koala.manga's name); `input` and `target` say it in words."""
  kind: str = schema.GRAY
  name: str = schema.GRAY
  per_image: int = 1
  input: str | None = None
  target: str | None = None


@dataclasses.dataclass(frozen=True)
class SplitRule:
  """How images were drawn into splits (koala.schema.split_for_hash)."""
  salt: str = schema.DEFAULT_SPLIT_SALT
  val_fraction: float | None = None
  test_fraction: float | None = None


@dataclasses.dataclass(frozen=True)
class RecordsManifest:
  """manifest.json. `options` is the run's flags as given (a record of the command, read only
  for the seed of older manifests and the input of each run); `runs` names each split's input
  in a manifest combined from several runs, None otherwise."""
  counts: RecordCounts = dataclasses.field(default_factory=RecordCounts)
  embedder: EmbedderInfo | None = None
  rendering: RecordsRendering | None = None   # None: a manifest from before renderings: gray
  split: SplitRule | None = None
  schema_version: int | None = None
  image_size: int | None = None
  embedder_size: int | None = None
  embedding_dim: int | None = None
  options: dict = dataclasses.field(default_factory=dict)
  runs: dict | None = None

  @property
  def rendering_name(self) -> str:
    """The rendering the records carry; a manifest from before renderings existed is gray."""
    return schema.GRAY if self.rendering is None else self.rendering.name

  def to_dict(self) -> dict:
    data = {
        "counts": _without_none(dataclasses.asdict(self.counts)),
        "embedder": None if self.embedder is None else self.embedder.to_dict(),
        "rendering": None if self.rendering is None else dataclasses.asdict(self.rendering),
        "split": None if self.split is None else dataclasses.asdict(self.split),
        "schema_version": self.schema_version, "image_size": self.image_size,
        "embedder_size": self.embedder_size, "embedding_dim": self.embedding_dim,
        "options": self.options, "runs": self.runs,
    }
    return _without_none(data)

  @classmethod
  def from_dict(cls, data: dict) -> "RecordsManifest":
    if not isinstance(data, dict):
      raise ValueError(f"a records manifest is a JSON object, got {type(data).__name__}")
    options = data.get("options") or {}
    embedder = None
    if data.get("embedder") is not None:
      embedder = EmbedderInfo.from_dict(data["embedder"])
      if embedder.embedder_seed is None and options.get("embedder_seed") is not None:
        embedder = dataclasses.replace(embedder, embedder_seed=options["embedder_seed"])
    section = lambda name, kind: (None if data.get(name) is None
                                  else kind(**_known(kind, data[name])))
    return cls(
        counts=RecordCounts(**_known(RecordCounts, data.get("counts"))),
        embedder=embedder, rendering=section("rendering", RecordsRendering),
        split=section("split", SplitRule), schema_version=data.get("schema_version"),
        image_size=data.get("image_size"), embedder_size=data.get("embedder_size"),
        embedding_dim=data.get("embedding_dim"), options=options, runs=data.get("runs"))

  def to_json(self) -> bytes:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode("utf-8")

  @classmethod
  def from_json(cls, data: bytes | str) -> "RecordsManifest":
    return cls.from_dict(json.loads(data))


def path(records_dir: str) -> str:
  return f"{records_dir.rstrip('/')}/{schema.MANIFEST}"


def _is_remote(file_path: str) -> bool:
  return "://" in file_path


def _read_file(file_path: str) -> bytes | None:
  """The file's bytes, None when it is not there; local files without TensorFlow, others
  (gs://, ram://) through tf.io.gfile."""
  if not _is_remote(file_path):
    try:
      with open(file_path, "rb") as f:
        return f.read()
    except FileNotFoundError:
      return None
  import tensorflow as tf
  if not tf.io.gfile.exists(file_path):
    return None
  with tf.io.gfile.GFile(file_path, "rb") as f:
    return f.read()


def _write_file(file_path: str, data: bytes) -> None:
  if not _is_remote(file_path):
    with open(file_path, "wb") as f:
      f.write(data)
    return
  import tensorflow as tf
  with tf.io.gfile.GFile(file_path, "wb") as f:
    f.write(data)


def read(records_dir: str,
         read_bytes: Callable[[str], bytes | None] = _read_file) -> RecordsManifest | None:
  """The manifest of a records folder; None when it has none (records made by other tools).
  ValueError when the file is not a manifest."""
  data = read_bytes(path(records_dir))
  return None if data is None else RecordsManifest.from_json(data)


def write(records_dir: str, manifest: RecordsManifest,
          write_bytes: Callable[[str, bytes], None] = _write_file) -> None:
  """Writes manifest.json into an existing records folder. The pipeline passes Beam's file
  system, so the file goes where its records went by the same rules."""
  write_bytes(path(records_dir), manifest.to_json())
