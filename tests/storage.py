"""Copying whole folders to and from Cloud Storage with the plain google-cloud-storage client,
for the tests that put a library, records or an export on gs:// (a local emulator).

Beam's and TensorFlow's file systems handle records, manifests and checkpoints on gs://; this
module is for the jobs a storage client does better, such as uploading an exported SavedModel
folder in one call. It honours STORAGE_EMULATOR_HOST, so tests run it against a local emulator.
"""
from __future__ import annotations

import os

from serving.archives import local_path


def split_gs_uri(uri: str) -> tuple[str, str]:
  if not uri.startswith("gs://"):
    raise ValueError(f"not a gs:// URI: {uri}")
  bucket, _, prefix = uri[len("gs://"):].partition("/")
  return bucket, prefix.strip("/")


def client(project: str | None = None):
  from google.cloud import storage
  if os.environ.get("STORAGE_EMULATOR_HOST"):
    return storage.Client.create_anonymous_client()
  return storage.Client(project=project)


def upload_dir(local_dir: str, uri: str, gcs_client=None) -> list[str]:
  """Uploads every file below `local_dir` to `uri` (gs://bucket/prefix), keeping the tree."""
  gcs = gcs_client or client()
  bucket_name, prefix = split_gs_uri(uri)
  bucket = gcs.bucket(bucket_name)
  uploaded = []
  for root, _, files in os.walk(local_dir):
    for name in sorted(files):
      path = os.path.join(root, name)
      rel = os.path.relpath(path, local_dir).replace(os.sep, "/")
      blob_name = f"{prefix}/{rel}" if prefix else rel
      bucket.blob(blob_name).upload_from_filename(path)
      uploaded.append(f"gs://{bucket_name}/{blob_name}")
  return uploaded


def download_dir(uri: str, local_dir: str, gcs_client=None) -> list[str]:
  """Downloads every object under `uri` into `local_dir`, keeping the tree; an object whose
  name would escape local_dir refuses the download before anything is written (local_path)."""
  gcs = gcs_client or client()
  bucket_name, prefix = split_gs_uri(uri)
  todo = []
  for blob in gcs.list_blobs(bucket_name, prefix=f"{prefix}/" if prefix else None):
    rel = blob.name[len(prefix):].lstrip("/") if prefix else blob.name
    if rel and not rel.endswith("/"):
      todo.append((blob, local_path(local_dir, rel, f"gs://{bucket_name}/{blob.name}")))
  for blob, path in todo:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    blob.download_to_filename(path)
  return [path for _, path in todo]
