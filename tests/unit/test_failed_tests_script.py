"""scripts/failed-tests.sh: the failing tests a step's log names, printed again at the end of `make test`."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "failed-tests.sh"


def summary(*logs: Path) -> list:
    done = subprocess.run([str(SCRIPT), *map(str, logs)], capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.splitlines()


def pytest_log(tmp_path: Path, body: str) -> Path:
    """The output of a real pytest run over one test module (colours forced on, as CI may have them)."""
    module = tmp_path / "test_sample.py"
    module.write_text(body)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--color=yes", "-v", str(module)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    log = tmp_path / "pytest.log"
    log.write_text(done.stdout + done.stderr)
    return log


def test_a_failing_and_an_erroring_test_are_named_with_their_reason(tmp_path):
    log = pytest_log(tmp_path, (
        "import pytest\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('no pool')\n"
        "def test_passes():\n    assert True\n"
        "def test_fails():\n    assert 1 == 2, 'one is not two'\n"
        "def test_errors(broken):\n    pass\n"))
    lines = summary(log)
    assert lines[-2].startswith("  pytest.log: FAILED test_sample.py::test_fails - AssertionError: one is not two")
    assert lines[-1].startswith("  pytest.log: ERROR test_sample.py::test_errors - RuntimeError: no pool")
    # before them, the end of each error
    assert lines[:-2] == ["  pytest.log: ERROR at setup of test_errors, the end of its error:",
                          "    E       RuntimeError: no pool",
                          "  pytest.log: test_fails, the end of its error:",
                          "    E       AssertionError: one is not two",
                          "    E       assert 1 == 2"], lines


def test_molecules_framed_verifier_output_is_read_and_a_passing_log_names_nothing(tmp_path):
    framed = tmp_path / "molecule-default.log"
    framed.write_text(
        "  \x1b[2m│\x1b[0m molecule/default/tests/test_faults.py::test_x PASSED\n"
        "  \x1b[2m│\x1b[0m FAILED molecule/default/tests/test_faults.py::test_y - assert 'face' in []\n"
        "  \x1b[2m│\x1b[0m FAILED molecule/default/tests/test_faults.py::test_y - assert 'face' in []\n")
    sanity = tmp_path / "sanity.log"
    sanity.write_text("ERROR: Found 1 pylint issue(s) which need to be resolved:\n"
                      "ERROR: tests/unit/x.py:20:11: subprocess-run-check: 'subprocess.run' used without check\n")
    passing = pytest_log(tmp_path, "def test_passes():\n    assert True\n")
    assert summary(framed, passing, tmp_path / "absent.log", sanity) == [
        "  molecule-default.log: FAILED molecule/default/tests/test_faults.py::test_y - assert 'face' in []",
        "  sanity.log: ERROR: tests/unit/x.py:20:11: subprocess-run-check: 'subprocess.run' used without check"]


def test_the_end_of_a_failing_tests_error_is_printed_before_the_summary(tmp_path):
    """A playbook's tail in an assertion's message: the summary line has its first line only."""
    log = pytest_log(tmp_path, (
        "def test_fails():\n"
        "    out = '\\n'.join(f'line {i}' for i in range(30)) + '\\n' + 'x' * 300 + 'END'\n"
        "    assert 1 == 2, out\n"))
    lines = summary(log)
    assert lines[0] == "  pytest.log: test_fails, the end of its error:"
    assert lines[1].strip().endswith("line 22") and lines[8].strip().endswith("line 29"), lines
    assert lines[9].strip().endswith("xxxEND") and " ... " in lines[9] and len(lines[9]) < 260, lines
    assert lines[10].strip() == "E       assert 1 == 2", lines
    assert lines[11].startswith("  pytest.log: FAILED test_sample.py::test_fails - AssertionError: line 0")
    assert len(lines) == 12, lines
