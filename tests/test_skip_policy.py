"""A skip is a visible event: pytest sessions run with tests/skip_policy.py list every skip and
fail on one that is not expected on the machine (tests/conftest.py EXPECTED_SKIPS)."""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest

from skip_policy import SkipPolicy

TESTS = Path(__file__).parent

CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from skip_policy import ExpectedSkip, SkipPolicy

def pytest_configure(config):
    config.pluginmanager.register(SkipPolicy((
        ExpectedSkip("test_project.py::test_expected_here*", "always", lambda: True),
        ExpectedSkip("test_project.py::test_expected_elsewhere", "a machine this is not", lambda: False),
    )), "skip-policy")
"""


def _session(tmp_path: Path, tests: str, *options: str) -> subprocess.CompletedProcess:
    """A pytest session (the way README runs it, plus -rs and ``options``) over ``tests`` under the skip policy."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_project.py").write_text("import pytest\n\n" + tests)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *options, str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )


def test_an_unexpected_skip_fails_the_session_naming_the_test_and_its_reason(tmp_path):
    result = _session(tmp_path, "def test_passes():\n    pass\n\ndef test_skips():\n    pytest.skip('the tool is missing')\n")
    assert result.returncode == 1, result.stdout
    assert "unexpected skips" in result.stdout
    assert "test_project.py::test_skips: Skipped: the tool is missing" in result.stdout
    assert "1 unexpected skip(s): the session fails" in result.stdout


@pytest.mark.parametrize("where", ["in a test", "at collection"])
def test_an_unexpected_skip_fails_a_session_on_two_workers_too(tmp_path, where):
    """The suite runs on two pytest-xdist workers: the skips they report reach the policy."""
    tests = (
        "def test_passes():\n    pass\n\ndef test_skips():\n    pytest.skip('the tool is missing')\n"
        if where == "in a test" else "pytest.importorskip('a_module_that_is_not_installed')\n\ndef test_never_runs():\n    pass\n"
    )
    result = _session(tmp_path, tests, "-n", "2")
    assert result.returncode == 1, result.stdout
    assert "unexpected skips" in result.stdout and "1 unexpected skip(s): the session fails" in result.stdout, result.stdout


def test_a_skip_at_collection_is_a_skip_too(tmp_path):
    result = _session(tmp_path, "pytest.importorskip('a_module_that_is_not_installed')\n\ndef test_never_runs():\n    pass\n")
    assert result.returncode == 1, result.stdout
    assert "test_project.py: Skipped: could not import 'a_module_that_is_not_installed'" in result.stdout


def test_an_expected_skip_is_listed_with_its_condition_and_the_session_passes(tmp_path):
    result = _session(tmp_path, "@pytest.mark.parametrize('n', [1, 2])\ndef test_expected_here(n):\n    pytest.skip('no such device here')\n")
    assert result.returncode == 0, result.stdout
    assert "skips expected on this machine" in result.stdout
    assert "test_project.py::test_expected_here[2]: expected when always" in result.stdout
    assert "SKIPPED [2]" in result.stdout and "no such device here" in result.stdout  # -rs


def test_a_listed_skip_whose_machine_condition_does_not_hold_fails_the_session(tmp_path):
    result = _session(tmp_path, "def test_expected_elsewhere():\n    pytest.skip('no GPU')\n")
    assert result.returncode == 1, result.stdout
    assert "test_project.py::test_expected_elsewhere: Skipped: no GPU" in result.stdout


def test_a_failing_session_with_an_unexpected_skip_stays_failed(tmp_path):
    result = _session(tmp_path, "def test_fails():\n    assert False\n\ndef test_skips():\n    pytest.skip('why')\n")
    assert result.returncode == 1 and "1 failed, 1 skipped" in result.stdout, result.stdout


def test_this_suite_runs_under_the_skip_policy_and_lists_skips(pytestconfig):
    policy = pytestconfig.pluginmanager.get_plugin("pot-zk-skip-policy")
    assert isinstance(policy, SkipPolicy) and policy.expected, "tests/conftest.py registers the skip policy"
    assert "s" in pytestconfig.option.reportchars, "pyproject's addopts must keep -rs"


def test_each_expected_skip_names_a_test_that_exists(pytestconfig):
    """An entry whose test was renamed or removed would silently allow nothing, or the wrong test."""
    for expected in pytestconfig.pluginmanager.get_plugin("pot-zk-skip-policy").expected:
        module, function = expected.test.split("::")
        names = [node.name for node in ast.parse((pytestconfig.rootpath / module).read_text()).body if isinstance(node, ast.FunctionDef)]
        assert any(fnmatch.fnmatchcase(name, function) for name in names), f"{expected.test}: no such test"
