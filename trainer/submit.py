"""python -m trainer.submit --project --region --image_uri --job_dir=gs://... --records_dir=gs://...
       [--preset] [--machine_type] [--accelerator_type] [--accelerator_count] [--dry_run]

Builds a Vertex AI CustomJob for `trainer.task` running in the Dockerfile's `trainer` image, and
submits it with google-cloud-aiplatform (`pip install -e .[vertex]`). `--dry_run` prints the spec
as JSON and needs neither that library nor credentials.

With `base_output_dir` set, Vertex AI sets AIP_MODEL_DIR (= job_dir/model), AIP_CHECKPOINT_DIR
and AIP_TENSORBOARD_LOG_DIR for the container, and trainer.task writes there.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from trainer import presets

DEFAULT_MACHINE = "a2-highgpu-1g"
DEFAULT_ACCELERATOR = "NVIDIA_TESLA_A100"


def build_spec(*, image_uri: str, job_dir: str, records_dir: str,
               preset: str = presets.DEFAULT, machine_type: str = DEFAULT_MACHINE,
               accelerator_type: str | None = DEFAULT_ACCELERATOR, accelerator_count: int = 1,
               extra_args: list[str] | None = None, display_name: str | None = None) -> dict:
  """The CustomJob as google-cloud-aiplatform's `CustomJob(**spec)` takes it."""
  if not job_dir.startswith("gs://"):
    raise ValueError(f"--job_dir must be a gs:// path for Vertex AI, got {job_dir}")
  if preset not in presets.PRESETS:
    raise ValueError(f"unknown preset {preset!r}; choose from {sorted(presets.PRESETS)}")
  machine = {"machine_type": machine_type}
  if accelerator_type and accelerator_count > 0:
    machine.update(accelerator_type=accelerator_type, accelerator_count=accelerator_count)
  args = [f"--records_dir={records_dir}", f"--job_dir={job_dir}", f"--preset={preset}"]
  if accelerator_type and accelerator_count > 1:
    args.append("--distribute=mirrored")
  args += list(extra_args or [])
  return {
      "display_name": display_name or f"koala-{preset.lower()}-{time.strftime('%Y%m%d-%H%M%S')}",
      "worker_pool_specs": [{
          "machine_spec": machine,
          "replica_count": 1,
          "container_spec": {"image_uri": image_uri, "args": args},
      }],
      "base_output_dir": job_dir,
  }


def submit(spec: dict, project: str, region: str, staging_bucket: str | None = None):
  try:
    from google.cloud import aiplatform
  except ImportError:
    raise SystemExit("google-cloud-aiplatform is not installed: pip install -e .[vertex] "
                     "(or use --dry_run to print the spec)") from None
  aiplatform.init(project=project, location=region,
                  staging_bucket=staging_bucket or spec["base_output_dir"])
  job = aiplatform.CustomJob(project=project, location=region, **spec)
  job.submit()
  return job


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--project", required=True)
  p.add_argument("--region", required=True)
  p.add_argument("--image_uri", required=True, help="The Dockerfile's `trainer` image, pushed.")
  p.add_argument("--job_dir", required=True, help="gs:// folder for all of the run's outputs.")
  p.add_argument("--records_dir", required=True, help="The pipeline's --output_dir (gs://).")
  p.add_argument("--preset", default=presets.DEFAULT, choices=sorted(presets.PRESETS))
  p.add_argument("--machine_type", default=DEFAULT_MACHINE)
  p.add_argument("--accelerator_type", default=DEFAULT_ACCELERATOR,
                 help="e.g. NVIDIA_TESLA_A100, NVIDIA_L4, NVIDIA_H100_80GB; '' for CPU only.")
  p.add_argument("--accelerator_count", type=int, default=1)
  p.add_argument("--dry_run", action="store_true", help="Print the spec as JSON; submit nothing.")
  args, extra = p.parse_known_args(argv)
  spec = build_spec(image_uri=args.image_uri, job_dir=args.job_dir, records_dir=args.records_dir,
                    preset=args.preset, machine_type=args.machine_type,
                    accelerator_type=args.accelerator_type or None,
                    accelerator_count=args.accelerator_count, extra_args=extra)
  if args.dry_run:
    json.dump(spec, sys.stdout, indent=2)
    print()
    return spec
  job = submit(spec, args.project, args.region)
  print(f"submitted {job.resource_name}")
  return spec


if __name__ == "__main__":
  main()
