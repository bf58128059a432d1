"""The second wheel: `pip install ./python-cli` puts `quadriga run` on PATH."""

import os
import shutil
import subprocess
import sys

import pytest


def _quadriga():
    # The virtualenv's scripts folder, then PATH.
    here = os.path.join(os.path.dirname(sys.executable), "quadriga")
    return here if os.path.exists(here) else shutil.which("quadriga")


@pytest.mark.skipif(_quadriga() is None, reason="the quadriga-cli wheel is not installed")
def test_quadriga_run_is_installed_and_runs_jobs():
    out = subprocess.run(
        [_quadriga(), "run", "-k", "echo", "job", ":::", "a", "b", "c"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["job a", "job b", "job c"]
