"""setup.py declares what the project uses, and nothing else.

An unused requirement is a promise nobody keeps: it costs every install time and pins, and a
reader hunts for the code that needs it. Each requirement is either imported by the project's
own code (found by parsing every module, imports inside functions included) or listed below with
the reason the project needs it without importing it.
"""
import ast
import importlib.metadata
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_DIRS = ("koala", "pipeline", "trainer", "serving", "demo", "bench", "tests")

# Needed at run time by another package, not imported by name.
USED_WITHOUT_IMPORT = {
    "google-crc32c": "Beam's WriteToTFRecord computes its CRCs with it (else slow pure Python)",
    "tensorboard": "tf.summary / Keras's TensorBoard callback (trainer.callbacks finds it by name)",
    "pytest-timeout": "a pytest plugin: pytest.ini's `timeout`",
}
# Namespace packages: the distribution owns a sub-package of `google`, not `google` itself.
IMPORT_NAMES = {
    "protobuf": "google.protobuf",
    "google-cloud-storage": "google.cloud.storage",
    "google-cloud-aiplatform": "google.cloud.aiplatform",
}


def declared_requirements() -> list[str]:
  """Distribution names in setup.py's REQUIRED and EXTRAS, read as literals (not installed
  metadata, which may be another checkout's)."""
  tree = ast.parse(open(os.path.join(REPO, "setup.py")).read())
  values = {t.id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)
            and t.id in ("REQUIRED", "EXTRAS")}
  specs = values["REQUIRED"] + [s for extra in values["EXTRAS"].values() for s in extra]
  return [re.match(r"[A-Za-z0-9_.-]+", s).group(0).lower() for s in specs]


def imported_modules() -> set[str]:
  names = set()
  for top in CODE_DIRS:
    for root, _, files in os.walk(os.path.join(REPO, top)):
      for f in files:
        if f.endswith(".py"):
          tree = ast.parse(open(os.path.join(root, f)).read())
          for node in ast.walk(tree):
            if isinstance(node, ast.Import):
              names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
              names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
  return names


def import_names(dist: str) -> set[str]:
  if dist in IMPORT_NAMES:
    return {IMPORT_NAMES[dist]}
  by_dist = {}
  for module, dists in importlib.metadata.packages_distributions().items():
    for d in dists:
      by_dist.setdefault(d.lower().replace("_", "-"), set()).add(module)
  return by_dist.get(dist, {dist.replace("-", "_")})


def test_every_declared_requirement_is_used():
  imported = imported_modules()
  unused = []
  for dist in declared_requirements():
    if dist in USED_WITHOUT_IMPORT:
      continue
    names = import_names(dist)
    if not any(m == n or m.startswith(n + ".") for m in imported for n in names):
      unused.append(f"{dist} (would be imported as {' or '.join(sorted(names))})")
  assert not unused, f"declared in setup.py but used nowhere: {unused}"
