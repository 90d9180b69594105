"""What can be checked of the containers and Cloud Build without a Docker engine: the YAML parses
and builds the Dockerfile's targets, base images are pinned to setup.py's versions, and every
stage's entry command exists in the project."""
import importlib.util
import os
import re
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(name):
  with open(os.path.join(REPO, name)) as f:
    return f.read()


def dockerfile():
  text = read("Dockerfile")
  args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
  stages = {m.group(2): m.group(1) for m in re.finditer(r"^FROM (\S+) AS ([\w-]+)", text, re.M)}
  resolve = lambda image: re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
  return text, args, {name: resolve(image) for name, image in stages.items()}


def pins():
  return dict(re.findall(r'"([a-z-]+)(?:\[\w+\])?==([\d.]+)"', read("setup.py")))


def test_cloudbuild_builds_and_pushes_every_target_the_dockerfile_defines():
  _, _, stages = dockerfile()
  build = yaml.safe_load(read("cloudbuild.yaml"))
  assert {"_REGION", "_REPO"} <= set(build["substitutions"])
  targets = [a.split("=", 1)[1] for s in build["steps"] for a in s.get("args", [])
             if str(a).startswith("--target=")]
  assert sorted(targets) == ["pipeline-worker", "serving", "trainer"]
  assert set(targets) <= set(stages)
  for target in targets:
    assert any(image.endswith(f"/{target}:${{_TAG}}") and "${_REGION}" in image
               and "${_REPO}" in image for image in build["images"])


def test_base_images_are_pinned_to_setup_py():
  _, args, stages = dockerfile()
  p = pins()
  assert stages["trainer"] == f"tensorflow/tensorflow:{p['tensorflow']}-gpu"
  assert stages["pipeline-worker"] == (
      f"apache/beam_python{sys.version_info.major}.{sys.version_info.minor}_sdk:{p['apache-beam']}")
  assert args["PYTHON_VERSION"] in read("setup.py")   # python_requires admits it


# The newest TensorFlow Serving release (tensorflow/serving 2.21 does not exist yet); the export
# is proven to run on it by tests/test_serving_runtime.py.
TF_SERVING_RELEASE = "2.20.0"


def test_serving_image_is_pinned_on_its_own_to_a_release_that_exists_everywhere_it_is_named():
  _, args, stages = dockerfile()
  assert args["TF_SERVING_VERSION"] == TF_SERVING_RELEASE
  assert stages["serving"] == f"tensorflow/serving:{TF_SERVING_RELEASE}"
  build = yaml.safe_load(read("cloudbuild.yaml"))
  assert build["substitutions"]["_TF_SERVING_VERSION"] == TF_SERVING_RELEASE
  serving_step = next(s for s in build["steps"] if "--target=serving" in s.get("args", []))
  assert "--build-arg=TF_SERVING_VERSION=${_TF_SERVING_VERSION}" in serving_step["args"]
  # Every image tag the docs tell users to pull is that release.
  for doc in ("README.md", "docs/serving.md", "docs/cloud.md", "Dockerfile"):
    tags = set(re.findall(r"tensorflow/serving:([\w.-]+)", read(doc))) - {"${TF_SERVING_VERSION}"}
    assert {t.removesuffix("-gpu") for t in tags} <= {TF_SERVING_RELEASE}, (doc, tags)


def test_each_stage_entry_command_exists_in_the_project():
  text, _, _ = dockerfile()
  entry = re.search(r'ENTRYPOINT \["python", "-m", "([\w.]+)"\]', text).group(1)
  assert entry == "trainer.task" and importlib.util.find_spec(entry) is not None
  out = subprocess.run([sys.executable, "-m", entry, "--help"], capture_output=True, text=True,
                       cwd=REPO, timeout=300)
  assert out.returncode == 0 and "--records_dir" in out.stdout
  # serving: the files it copies exist (the model is exported before the build).
  for src in re.findall(r"^COPY (serving/\S+)", text, re.M):
    assert os.path.exists(os.path.join(REPO, src)), src
  assert "ENV MODEL_NAME=koala" in text
  # pipeline-worker: the packages Dataflow imports on the workers are the ones copied in
  # (pipeline.run's; serving.beam_colorize's, which runs the served graph's signatures).
  for package in ("koala", "pipeline", "trainer", "serving"):
    assert f"COPY {package} /koala/{package}" in text
