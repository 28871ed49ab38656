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
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  python -m pip install --quiet --upgrade pip >/dev/null
  python -m pip install --quiet -e "$ROOT${PARLEY_EXTRAS:+[$PARLEY_EXTRAS]}"
  touch "$STAMP"
fi
