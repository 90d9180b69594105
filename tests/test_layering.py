"""Data flows one way: pipeline -> records -> trainer -> the served graph -> serving, and what
pipeline and trainer share with the rest lives in koala/ below them. These tests read the source
(every import, those inside functions and relative ones too, with `ast`), so a shortcut from one
stage back into an earlier one fails here rather than in review.

Layers, each importing only its own and those below it, with no exemption:

  koala (0) < pipeline (1) < trainer (2) < trainer.export (3) < serving (4)

trainer.export is the served graph (the export command, the page ops, the signatures): it reads
the trained model (trainer), and serving runs what it builds. The rest of trainer does not
import it. demo/, bench/ and tests/ sit above everything and may import anything.

Also: no import cycles inside a package, and no product module a newcomer cannot read in one
sitting (over MAX_LINES lines).
"""
import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("koala", "pipeline", "trainer", "serving")   # the product; demo, bench, tests above
LAYERS = (("koala", 0), ("pipeline", 1), ("trainer.export", 3), ("trainer", 2), ("serving", 4))
MAX_LINES = 400


def modules(package: str, repo: str = REPO) -> dict[str, str]:
  """Dotted module name -> source file, for every .py file under a top-level package."""
  found = {}
  for root, _, files in os.walk(os.path.join(repo, package)):
    for f in sorted(files):
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(root, f), repo)[:-len(".py")]
        name = rel.replace(os.sep, ".").removesuffix(".__init__")
        found[name] = os.path.join(root, f)
  return found


def imports(path: str, module: str = "") -> set[str]:
  """Every module a file imports, by its dotted name; `from a import b` gives a and a.b (b may be
  a submodule). Relative imports are resolved against `module`, the file's own dotted name."""
  names = set()
  package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
  for node in ast.walk(ast.parse(open(path).read(), path)):
    if isinstance(node, ast.Import):
      names |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = package.split(".")
        parent = ".".join(parts[:len(parts) - (node.level - 1)])
        base = ".".join(p for p in (parent, base) if p)
      names |= {base} | {f"{base}.{a.name}" for a in node.names}
  return names


def layer(module: str) -> int | None:
  """The layer of a product module (None: not product code, e.g. numpy or tests)."""
  for prefix, rank in LAYERS:
    if module == prefix or module.startswith(prefix + "."):
      return rank
  return None


def upward_imports(package: str, repo: str = REPO) -> dict[str, list[str]]:
  """Module -> the product modules it imports from a higher layer than its own."""
  found = {}
  for name, path in modules(package, repo).items():
    up = sorted(m for m in imports(path, name) if (layer(m) or 0) > layer(name))
    if up:
      found[name] = up
  return found


def test_layers_are_ordered_as_the_data_flows():
  assert [rank for _, rank in sorted(LAYERS, key=lambda p: p[1])] == [0, 1, 2, 3, 4]
  assert layer("trainer.export") == 3 and layer("trainer.export.page") == 3
  assert layer("trainer") == 2 and layer("trainer.exporter") == 2 and layer("trainer.task") == 2
  assert layer("serving.client") == 4 and layer("numpy") is None and layer("koalas") is None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_upward_import(package):
  assert upward_imports(package) == {}, f"{package} imports from a layer above it"


def test_the_check_sees_every_kind_of_import(tmp_path):
  """A stage that reaches up, by any spelling, is caught: `import`, `from ... import`, inside a
  function, relative, and the rest of trainer reaching into trainer.export; imports down or
  within a layer are not."""
  for rel, text in {
      "koala/__init__.py": "", "koala/a.py": "def f():\n  import serving.client\n",
      "koala/b.py": "from pipeline import run\nfrom koala import colour\n",
      "pipeline/__init__.py": "", "pipeline/c.py": "import trainer.task as task\n",
      "trainer/__init__.py": "", "trainer/d.py": "from trainer import export\n",
      "trainer/e.py": "from .export import build\n", "trainer/f.py": "from . import model\n",
      "trainer/export/__init__.py": "", "trainer/export/g.py": "from trainer import model\n",
      "trainer/export/h.py": "from . import page\nfrom .. import artifacts\n",
  }.items():
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text(text)
  repo = str(tmp_path)
  assert upward_imports("koala", repo) == {"koala.a": ["serving.client"],
                                           "koala.b": ["pipeline", "pipeline.run"]}
  assert upward_imports("pipeline", repo) == {"pipeline.c": ["trainer.task"]}
  assert upward_imports("trainer", repo) == {
      "trainer.d": ["trainer.export"], "trainer.e": ["trainer.export", "trainer.export.build"]}
  assert imports(str(tmp_path / "trainer/export/h.py"), "trainer.export.h") == {
      "trainer.export", "trainer.export.page", "trainer", "trainer.artifacts"}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """A cycle of the directed graph as [a, b, ..., a], or None (depth-first search)."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        cycle = visit(nxt)
        if cycle:
          return cycle
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def test_find_cycle():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("package", PACKAGES)
def test_package_has_no_import_cycle(package):
  """A circle (evaluate and guided_eval importing each other) hides which module owns a helper
  and works only while one side imports lazily. A package's own __init__ is left out of the
  graph (`from trainer.export import build` names trainer.export too); the inits are empty or
  import nothing of their package."""
  found = modules(package)
  inits = {name for name, path in found.items() if path.endswith("__init__.py")}
  graph = {name: {m for m in imports(path, name) if m in found and m != name} - inits
           for name, path in found.items()}
  assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


@pytest.mark.parametrize("package", PACKAGES)
def test_package_inits_import_nothing_of_their_package(package):
  """What the cycle check leaves out must stay empty of imports: a package's __init__ that
  imported its own modules would hide a cycle through it (and would load TensorFlow for the
  REST client, which reads trainer.export.signatures without it)."""
  for name, path in modules(package).items():
    if path.endswith("__init__.py"):
      assert not {m for m in imports(path, name) if layer(m) is not None}, name


@pytest.mark.parametrize("package", PACKAGES)
def test_no_product_module_is_over_the_line_limit(package):
  """A newcomer reads a module in one sitting: past MAX_LINES, split it where its parts change
  hands (as trainer/export/ and serving/beam_*.py are)."""
  long = {name: n for name, path in modules(package).items()
          if (n := sum(1 for _ in open(path))) > MAX_LINES}
  assert not long, f"over {MAX_LINES} lines: {long}"
