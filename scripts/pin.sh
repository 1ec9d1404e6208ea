#!/usr/bin/env bash
# Resolve the pins of one combination: constraints/COMBO.in (+ pyproject's dependencies and
# test extra) -> constraints/COMBO.txt, with `uv pip compile` on the combination's Python.
# Existing pins are kept unless --upgrade is given (then everything is resolved afresh).
#
#   scripts/pin.sh airflow-3.2-stripe15-py3.11 [--upgrade]
#   scripts/pin.sh all
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/combo.sh

[ $# -ge 1 ] || { echo "usage: scripts/pin.sh COMBO|all [uv pip compile options]" >&2; exit 2; }
combos=("$1"); shift
[ "${combos[0]}" = all ] && mapfile -t combos < <(combo_list)
for combo in "${combos[@]}"; do
  combo_check "$combo"
  py=$(combo_python "$combo")
  echo "pin: $combo on $("$py" -V 2>&1)" >&2
  uv pip compile -q --python "$py" --extra test --no-header --annotation-style line \
    --custom-compile-command "scripts/pin.sh $combo" \
    -o "constraints/$combo.txt" pyproject.toml "constraints/$combo.in" "$@"
  sed -i "1i # Pins of $combo, resolved by scripts/pin.sh from constraints/$combo.in; do not edit." "constraints/$combo.txt"
done
