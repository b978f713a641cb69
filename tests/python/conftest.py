"""Shared fixtures of the Python suites: where the repository, the CLI and the bundled data
are. The C library is found by the attnmap package ($ATTNMAP_LIBRARY, scripts/test.sh
sets it to build/libattnmap.so); the CLI is $ATTNMAP_CLI or build/attnmap."""
import os
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "examples"))
try:
    import attnmap  # noqa: F401  the installed package (pip install ./python)
except ImportError:
    sys.path.insert(0, os.path.join(REPO, "python"))


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("ATTNMAP_CLI", os.path.join(REPO, "build", "attnmap"))
    if not os.access(path, os.X_OK):
        pytest.fail("attnmap CLI not found at %s (build it, or set ATTNMAP_CLI)" % path)
    return path


def run_cli(cli, *args, check=True):
    p = subprocess.run([cli, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("attnmap %s failed (%d): %s" % (" ".join(args), p.returncode,
                                                             p.stderr))
    return p
