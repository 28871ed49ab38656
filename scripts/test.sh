#!/usr/bin/env bash
# The whole test suite. Extra arguments go to pytest.
PARLEY_EXTRAS=test PARLEY_WITH_MINILM=1 source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
# The custom-action tests run a real rasa-sdk action server. rasa-sdk pins its own web stack
# (sanic, pydantic, grpcio …), so it gets a virtualenv of its own, as an action server has in
# production; without it (offline, say) those tests skip and say why.
SDK_VENV="${PARLEY_SDK_VENV:-$ROOT/.venv-rasa-sdk}"
if [ -z "${PARLEY_RASA_SDK_PYTHON:-}" ]; then
  if [ ! -x "$SDK_VENV/bin/python" ]; then
    python3 -m venv "$SDK_VENV" || true
  fi
  if [ -x "$SDK_VENV/bin/python" ] && ! "$SDK_VENV/bin/python" -c "import rasa_sdk" 2>/dev/null; then
    "$SDK_VENV/bin/python" -m pip install --quiet "rasa-sdk==3.21.1" \
      || echo "rasa-sdk could not be installed; the tests that need it will skip" >&2
  fi
  export PARLEY_RASA_SDK_PYTHON="$SDK_VENV/bin/python"
fi
# One worker per core (pytest-xdist); a test file stays on one worker, so the files that
# share a trained model or a server keep it. PARLEY_TEST_WORKERS=0: all in this process.
python -m pytest -n "${PARLEY_TEST_WORKERS:-auto}" --dist loadfile "$@"
