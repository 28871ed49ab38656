#!/usr/bin/env bash
# The whole test suite. Extra arguments go to pytest.
PARLEY_EXTRAS=test PARLEY_WITH_MINILM=1 source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
python -m pytest "$@"
