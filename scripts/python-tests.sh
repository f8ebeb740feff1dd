#!/usr/bin/env bash
# The Python package's tests: the README's pip command in a fresh virtualenv, then pytest.
# Usage: scripts/python-tests.sh [PYTEST ARGS...]
# Needs scripts/setup.sh --with-reference-tools first: the tests compare with Pillow, torchvision,
# scikit-learn and scikit-image, and resmooth.losses needs torch; those come from .venv through a
# .pth file instead of a second download of torch. The Loader's views are compared with
# target/release/resmooth (setup.sh builds it); RESMOOTH_REQUIRE_BIN=1 fails where it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-target/py-venv}
[ -x .venv/bin/python ] || { echo "python-tests: run scripts/setup.sh --with-reference-tools first" >&2; exit 1; }

rm -rf "$VENV"
# from .venv's interpreter, so the .pth below points at packages of the same Python version
.venv/bin/python -m venv "$VENV"
start=$(date +%s)
"$VENV/bin/pip" install --quiet ./python
echo "python-tests: pip install ./python took $(( $(date +%s) - start )) s"
"$VENV/bin/pip" install --quiet pytest

purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
purelib .venv/bin/python > "$(purelib "$VENV/bin/python")/zz-resmooth-reference-tools.pth"

# from python/tests, so `import resmooth` is the installed package, not python/resmooth
cd python/tests
exec "../../$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
