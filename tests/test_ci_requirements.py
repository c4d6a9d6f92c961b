"""CI cannot skip in silence: with PIXELSMITH_REQUIRE_DATA=1 (set by .ci/run) a test whose data is
missing fails; without it the test is skipped and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pixelsmith

ROOT = Path(pixelsmith.__file__).parents[1]
TEST = "tests/test_data_sources.py::test_fashion_mnist_full_sets_labels_and_speed"


def _pytest(tmp_path: Path, require: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIXELSMITH_FASHION_MNIST": str(tmp_path / "nothing-here")}
    env.pop("PIXELSMITH_REQUIRE_DATA", None)
    if require:
        env["PIXELSMITH_REQUIRE_DATA"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", TEST]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


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
    assert "PIXELSMITH_REQUIRE_DATA=1 PIXELSMITH_REQUIRE_BROWSER=1 make test" in ci
    assert "apt-get install -y -q chromium chromium-driver" in ci  # the page's browser test
