#!/usr/bin/env bash
# The whole test suite. Extra arguments go to pytest.
PARLEY_EXTRAS=test source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
python -m pytest "$@"
