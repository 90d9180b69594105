"""Data flows one way: pipeline -> records -> trainer -> SavedModel -> serving, and what two of
them share lives in koala/. These tests read the source (every import, those inside functions
too, with `ast`), so a shortcut from one stage into another fails here rather than in review.

Not checked: trainer -> serving. trainer/export.py builds the served graph from
trainer.export.page and trainer.export.guidance, so that direction does not hold yet.
"""
import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def modules(package: str) -> dict[str, str]:
  """Dotted module name -> source file, for every .py file under a top-level package."""
  found = {}
  for root, _, files in os.walk(os.path.join(REPO, package)):
    for f in sorted(files):
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(root, f), REPO)[:-len(".py")]
        name = rel.replace(os.sep, ".").removesuffix(".__init__")
        found[name] = os.path.join(root, f)
  return found


def imports(path: str) -> set[str]:
  """Every module a file imports, by its dotted name; `from a import b` gives a and a.b (b may be
  a submodule)."""
  names = set()
  for node in ast.walk(ast.parse(open(path).read(), path)):
    if isinstance(node, ast.Import):
      names |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
  return names


def imports_of(path: str, package: str) -> set[str]:
  return {n for n in imports(path) if n == package or n.startswith(package + ".")}


@pytest.mark.parametrize("package, forbidden", [
    ("pipeline", "serving"),    # the batch job meets serving only in koala/
    ("koala", "pipeline"), ("koala", "trainer"), ("koala", "serving"),   # the shared core
])
def test_package_does_not_import(package, forbidden):
  bad = {name: sorted(imports_of(path, forbidden)) for name, path in modules(package).items()}
  assert not {k: v for k, v in bad.items() if v}, f"{package} imports {forbidden}"


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


@pytest.mark.parametrize("package", ["trainer"])
def test_package_has_no_import_cycle(package):
  """A circle (evaluate and guided_eval importing each other) hides which module owns a helper
  and works only while one side imports lazily."""
  found = modules(package)
  graph = {name: {m for m in imports_of(path, package) if m in found and m != name}
           for name, path in found.items()}
  graph = {name: deps - {package} for name, deps in graph.items()}   # `from trainer import x`
  assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
