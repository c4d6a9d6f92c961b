"""CI cannot skip in silence: with PIXELSMITH_REQUIRE_DATA=1 (set by .ci/run) a test whose data is
missing fails; without it the test is skipped and says why."""

from __future__ import annotations

import ast
import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pixelsmith

ROOT = Path(pixelsmith.__file__).parents[1]
TEST = "tests/test_data_sources.py::test_fashion_mnist_full_sets_labels_and_speed"
# What .ci/run does inside its network namespace before `make test`.
NAMESPACE = "ip link set lo up"


def _pytest(tmp_path: Path, require: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIXELSMITH_FASHION_MNIST": str(tmp_path / "nothing-here")}
    env.pop("PIXELSMITH_REQUIRE_DATA", None)
    if require:
        env["PIXELSMITH_REQUIRE_DATA"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", TEST]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # two pytest processes
def test_missing_data_fails_under_ci_and_is_skipped_elsewhere(tmp_path):
    skipped = _pytest(tmp_path, require=False)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout
    assert "Fashion-MNIST is not installed" in skipped.stdout
    failed = _pytest(tmp_path, require=True)
    assert failed.returncode == 1 and "1 error" in failed.stdout, failed.stdout  # in its setup
    assert "PIXELSMITH_REQUIRE_DATA=1 requires it" in failed.stdout


def test_ci_installs_the_data_and_requires_it():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "get-fashion-mnist.sh ||" not in ci  # a failed install stops the run
    assert "PIXELSMITH_REQUIRE_DATA=1 PIXELSMITH_REQUIRE_BROWSER=1 unshare -n" in ci
    assert 'pkgs="chromium chromium-driver' in ci  # the page's browser test


# Inside the namespace: loopback answers; the outside, by address or by name, does not.
PROBE = """
import socket, sys
server = socket.create_server(("127.0.0.1", 0))
socket.create_connection(server.getsockname(), timeout=5).close()
for host in ("1.1.1.1", "pypi.org"):
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as e:
        print(host, "unreachable:", type(e).__name__, e)
    else:
        sys.exit(f"{host} answered from inside the namespace")
"""


def _no_namespace() -> str | None:
    """Why a network namespace cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "making a network namespace needs root (CI runs as root)"
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not installed" if missing else None


def test_ci_runs_the_tests_with_loopback_only():
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"unshare -n sh -c '{NAMESPACE} && make test'" in ci
    assert "make -q install" in ci  # make test inside finds nothing to install
    if why := _no_namespace():
        pytest.skip(why)
    cmd = ["unshare", "-n", "sh", "-c", f'{NAMESPACE} && exec "$0" -c "$1"', sys.executable, PROBE]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr  # loopback answered
    lines = r.stdout.splitlines()
    assert [ln.split()[:2] for ln in lines] == [
        ["1.1.1.1", "unreachable:"],
        ["pypi.org", "unreachable:"],
    ], r.stdout


def _test_names(path: Path) -> set[str]:
    """The test functions a file defines, at module level or in classes."""
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_every_tier_entry_names_a_test_that_exists():
    from conftest import MARKERS
    from tiers import TIERS

    assert set(TIERS) <= set(MARKERS)
    for tier, entries in TIERS.items():
        for entry in entries:
            file, _, test = entry.partition("::")
            files = sorted(ROOT.glob(file))
            assert files, f"TIERS[{tier!r}]: {entry}: no such file"
            names = set().union(*(_test_names(f) for f in files))
            pattern = test.split("[")[0]
            assert not pattern or fnmatch.filter(names, pattern), f"TIERS[{tier!r}]: {entry}"
