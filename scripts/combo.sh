# Helpers shared by the scripts that deal with test combinations (sourced, not run).
#
# A combination is named airflow-X.Y-stripeN-pyA.B; constraints/<name>.in says what it asks for
# and constraints/<name>.txt holds its resolved pins (scripts/pin.sh).
DEFAULT_COMBO=airflow-3.3-stripe16-py3.11

# uv: the one on PATH, else one installed into .venvs/uv (never into the system Python).
if command -v uv >/dev/null 2>&1; then
  UV=$(command -v uv)
else
  UV="$PWD/.venvs/uv/bin/uv"
  if [ ! -x "$UV" ]; then
    python3 -m venv "$PWD/.venvs/uv"
    "$PWD/.venvs/uv/bin/python" -m pip install -q --disable-pip-version-check uv
  fi
fi
uv() { "$UV" "$@"; }

combo_list() { for f in constraints/*.in; do basename "$f" .in; done; }

combo_check() {
  [[ "$1" =~ ^airflow-[0-9]+\.[0-9]+-stripe[0-9]+-py3\.[0-9]+$ && -f "constraints/$1.in" ]] || {
    echo "unknown combination '$1': expected one of: $(combo_list | tr '\n' ' ')" >&2
    exit 2
  }
}

# The interpreter for a combination's Python (pyA.B): $PYTHON_A_B (e.g. PYTHON_3_10), python3.X on
# PATH, then pyenv's. uv cannot download interpreters here, so a missing one is an error.
combo_python() {
  local want=${1##*-py} var candidate
  var="PYTHON_${want//./_}"
  for candidate in "${!var:-}" "$(command -v "python$want" || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python"$want" /usr/bin/python"$want"; do
    if [ -n "$candidate" ] && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "python$want not found: install it or set $var=/path/to/python$want" >&2
  return 1
}
