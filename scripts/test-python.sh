#!/usr/bin/env bash
# The Python package's tests: makes a virtualenv under target/, installs
# maturin, pytest and cloudpickle into it, builds and installs both wheels
# (python/: the `quadriga` package; python-cli/: the `quadriga` binary) from
# this checkout, and runs the pytest suite in python/tests.
#
# The wheels are built with Cargo's dev profile (set QUADRIGA_PY_PROFILE=release
# for an optimised build): it reuses the workspace's debug build, and the tests
# measure behaviour, not speed.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

python="${PYTHON:-python3}"
venv="target/python-venv"
profile="${QUADRIGA_PY_PROFILE:-dev}"

step "virtualenv ($venv, from $("$python" --version 2>&1))"
if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        # Debian's Python ships venv separately.
        if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv
        rm -rf "$venv"
        "$python" -m venv "$venv"
    fi
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "maturin>=1.5,<2" "pytest>=7" "cloudpickle>=2.2"

step "build and install the wheels (profile $profile)"
# No build isolation: maturin is in the virtualenv already (and pip would
# otherwise fetch it again for each package).
export MATURIN_PEP517_ARGS="--profile $profile"
# The build backend runs the `maturin` binary of the virtualenv.
export PATH="$PWD/$venv/bin:$PATH"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-build-isolation --force-reinstall --no-deps ./python ./python-cli

step "pytest python/tests"
# Run from python/tests' parent with the installed package first on the path,
# not the source folder (whose extension module is not built in place).
cd python
exec "../$venv/bin/pytest" -q -p no:cacheprovider -o faulthandler_timeout=300 tests "$@"
