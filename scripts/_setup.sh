# Sourced by scripts/launch and scripts/test: a venv with launcher installed, cached outside the checkout.
# LAUNCHER_CI_CACHE moves the cache (default ~/.cache/launcher-ci).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${LAUNCHER_CI_CACHE:-$HOME/.cache/launcher-ci}"
VENV="$CACHE/venv"
mkdir -p "$CACHE"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
fi
# reinstall when pyproject.toml changed or the editable install points at another checkout (asked of
# Python itself: a stamp alone goes stale when another checkout re-points the shared venv)
STAMP="$VENV/.launcher-$1-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-12)"
WHERE="$(cd / && "$VENV/bin/python" -c 'import os, launcher.cli; print(os.path.dirname(os.path.dirname(os.path.realpath(launcher.__file__))))' 2>/dev/null || true)"
if [ ! -f "$STAMP" ] || [ "$WHERE" != "$(realpath "$ROOT")" ]; then
  extra=""; [ "$1" = test ] && extra="[test]"
  "$VENV/bin/python" -m pip install -q -e "$ROOT$extra" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  "$VENV/bin/python" -c "import launcher" && touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
