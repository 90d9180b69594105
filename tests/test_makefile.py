"""`make demo` and `make test` on a stock Debian/Ubuntu Python, in a virtualenv, and with conda.

Debian 12 and Ubuntu 23.04+ mark their own python3 externally managed (PEP 668): `pip install`
into it is refused, and the README's two commands used to stop there. The Makefile now installs
into the active environment (VIRTUAL_ENV or CONDA_PREFIX) or else into a project .venv. These
tests run the real Makefile: the interpreter choice, and on an externally-managed python3 (this
machine's /usr/bin/python3) a real venv made by `make` and the project really installed into it
by the Makefile's own install recipe (with --no-deps: the multi-GB dependencies are not the
point, where they go is).
"""
import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM_PYTHON = "/usr/bin/python3"
NOT_INHERITED = ("VIRTUAL_ENV", "CONDA_PREFIX", "MAKEFLAGS", "MFLAGS", "MAKELEVEL",
                 "MAKEOVERRIDES", "PYTHONPATH", "PYTHONHOME")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def user_env(**extra) -> dict:
  """A user's shell: no environment active unless given, no test runner's settings."""
  env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED and not k.startswith("PIP_")}
  env.update(extra)
  return env


def make(*args, **env_extra) -> subprocess.CompletedProcess:
  return subprocess.run(["make", "-s", *args], cwd=REPO, env=user_env(**env_extra),
                        capture_output=True, text=True, timeout=600)


def test_outside_an_environment_the_project_venv_is_used():
  assert make("print-python").stdout.strip() == ".venv/bin/python"


@pytest.mark.parametrize("variable", ["VIRTUAL_ENV", "CONDA_PREFIX"])
def test_inside_a_virtualenv_or_conda_the_active_python_is_used(variable, tmp_path):
  out = make("print-python", **{variable: str(tmp_path)})
  assert out.stdout.strip() == "python3"
  dry = make("-n", "install", "demo", "test", **{variable: str(tmp_path)}).stdout
  assert "-m venv" not in dry and "python3 -m pip install" in dry


def test_demo_and_test_install_and_run_with_the_venv_interpreter(tmp_path):
  venv = str(tmp_path / "venv")
  dry = make("-n", "demo", "test", f"VENV={venv}", f"PYTHON={SYSTEM_PYTHON}").stdout
  commands = [line for line in dry.splitlines() if " -m pip " in line or " -m demo" in line
              or " -m pytest" in line]
  assert len(commands) == 3, dry
  assert all(line.startswith(f"{venv}/bin/python ") for line in commands), dry
  assert f"{SYSTEM_PYTHON} -m venv {venv}" in dry


def test_test_runs_every_test_and_test_fast_all_but_the_slow_tier(tmp_path):
  venv = str(tmp_path / "venv")
  run = lambda target: [line for line in make("-n", target, f"VENV={venv}",
                                              f"PYTHON={SYSTEM_PYTHON}").stdout.splitlines()
                        if " -m pytest" in line]
  assert run("test") == [f"{venv}/bin/python -m pytest tests"]
  assert run("test-fast") == [f'{venv}/bin/python -m pytest tests -m "not slow"']


def externally_managed(python: str) -> bool:
  if not os.path.exists(python):
    return False
  stdlib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                          capture_output=True, text=True).stdout.strip()
  return os.path.exists(os.path.join(stdlib, "EXTERNALLY-MANAGED"))


@pytest.mark.skipif(not externally_managed(SYSTEM_PYTHON),
                    reason=f"{SYSTEM_PYTHON} is absent or not externally managed (PEP 668)")
def test_on_an_externally_managed_python_make_installs_into_its_own_venv(tmp_path):
  # The trap is real here: the system python3 refuses pip installs.
  refused = subprocess.run([SYSTEM_PYTHON, "-m", "pip", "install", "--no-deps", "--no-index",
                            "koala-nothing"], capture_output=True, text=True, env=user_env())
  if "No module named pip" not in refused.stderr:
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr
  venv = str(tmp_path / "venv")
  made = make("venv", f"VENV={venv}", f"PYTHON={SYSTEM_PYTHON}")
  assert made.returncode == 0, made.stderr
  python = os.path.join(venv, "bin", "python")
  has_setuptools = subprocess.run([python, "-c", "import setuptools"]).returncode == 0
  flags = "--no-deps" + (" --no-build-isolation" if has_setuptools else "")
  installed = make("install", f"VENV={venv}", f"PYTHON={SYSTEM_PYTHON}", f"PIP_FLAGS={flags}")
  assert installed.returncode == 0, installed.stderr[-3000:]
  where = subprocess.run([python, "-c", "import sys, koala; print(sys.prefix, koala.__file__)"],
                         capture_output=True, text=True, cwd=str(tmp_path), env=user_env())
  prefix, module = where.stdout.split()
  assert os.path.samefile(prefix, venv)
  assert module == os.path.join(REPO, "koala", "__init__.py")   # the editable install
  # The system python3 is untouched.
  assert subprocess.run([SYSTEM_PYTHON, "-c", "import koala"], cwd=str(tmp_path),
                        capture_output=True, env=user_env()).returncode != 0
