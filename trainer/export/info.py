"""The export's description: what a version folder holds beside the SavedModel, written by the
export and read by everything that runs one (the Streamlit page's notes, the batch job's
manifest, tests).

  <version>/assets.extra/koala_export.json

TF Serving ignores assets.extra/, so the file travels with the model wherever it is copied
(a gs:// bucket, the serving image). It answers what the graph itself cannot say: which
embedder is inside (random weights or not), what job it came from, how its pages are composed.

Older exports lack the fields added since (`rendering`, `gap_closing`): they read as None, so an
export made before a field existed still loads; keys this version does not know are ignored.
`ExportInfo.from_dict` and `to_dict` are the one reader and writer of the file's content.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Callable

from koala.embedder import EmbedderInfo
from trainer import artifacts

PATH = "assets.extra/koala_export.json"     # below the version folder


@dataclasses.dataclass
class ExportInfo:
  embedder: EmbedderInfo | None = None     # the job's embedder.json
  embedder_identity: str | None = None     # the rebuilt embedder's identity (its weights)
  colorizer_size: int | None = None        # the side of the model's square input
  max_pixels: int | None = None            # pages with more are refused
  png_compression: int | None = None       # zlib level of the output PNG
  gap_closing: int | None = None           # manga jobs: fill pixels of gap closing; else None
  job_dir: str | None = None               # the training job it was exported from
  signatures: list[str] = dataclasses.field(default_factory=list)
  rendering: dict | None = None            # the job's rendering.json

  @property
  def random_weights(self) -> bool:
    """True when the embedder inside has random weights: its colours mean nothing."""
    return self.embedder is not None and bool(self.embedder.random_weights)

  def to_dict(self) -> dict:
    data = dataclasses.asdict(self)
    data["embedder"] = {} if self.embedder is None else self.embedder.to_dict()
    return data

  @classmethod
  def from_dict(cls, data: dict) -> "ExportInfo":
    known = {f.name for f in dataclasses.fields(cls)}
    fields = {k: v for k, v in data.items() if k in known}
    embedder = fields.get("embedder")
    fields["embedder"] = EmbedderInfo.from_dict(embedder) if embedder else None
    return cls(**fields)


def path(version_dir: str) -> str:
  return artifacts.join(version_dir, PATH)


def write(version_dir: str, info: ExportInfo) -> None:
  """Writes the description into a version folder (local or gs://)."""
  artifacts.write_json(path(version_dir), info.to_dict())


def _read_local(file_path: str) -> bytes:
  with open(file_path, "rb") as f:
    return f.read()


def read(version_dir: str, read_bytes: Callable[[str], bytes] = _read_local) -> ExportInfo:
  """The description of a version folder. `read_bytes` defaults to the local disk; the batch
  job passes Beam's file system's, so a gs:// export reads by the same rule. OSError when the
  file is not there, ValueError when it is not a description."""
  data = json.loads(read_bytes(path(version_dir)))
  if not isinstance(data, dict):
    raise ValueError(f"{path(version_dir)} is not a JSON object")
  return ExportInfo.from_dict(data)
