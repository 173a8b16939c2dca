#!/usr/bin/env bash
# The GPU privacy run of issue #16: trains the min-max anonymizer (the minmax preset, scaled up) on a
# lent CUDA machine inside a hard wall-clock budget, then the attacks under the 3x budget rule and
# `anonreid evaluate`, and leaves the results and the checkpoint in $OUT (what the device tool copies
# back). The phases, the budget and what lands in $OUT: orchestration/gpu_privacy.py.
#
#   OUT=/some/dir orchestration/gpu_privacy_run.sh          # on the GPU machine (needs CUDA)
#   OUT=/some/dir orchestration/gpu_privacy_run.sh --dry    # the same phases on CPU, tiny, ~1 min (CI)
#
# Environment: OUT (required), BUDGET_S (hard budget in seconds from this script's start, setup
# included; default 540: one device command may run 600 s), WORK (kept between calls, so a second call
# resumes; default out/gpu_privacy in the repository, which git ignores), DATA (a carried world
# directory; default: simulate the 90-identity world), PYTHON (default: .venv/bin/python, else python3).
# Python packages the machine lacks travel as wheels in .whl/ (docs/BENCHMARKS.md says which).
set -euo pipefail
STARTED=$(date +%s.%N)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=gpu
case "${1:-}" in
  --dry) MODE=dry ;;
  "") ;;
  *) echo "usage: OUT=DIR $0 [--dry]" >&2; exit 2 ;;
esac
: "${OUT:?set OUT: the folder the results and the checkpoint are written to}"
WORK=${WORK:-$REPO/out/gpu_privacy}
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python; else PY=python3; fi
fi
mkdir -p "$WORK" "$OUT"
if compgen -G "$REPO/.whl/*.whl" > /dev/null; then  # wheels carried for what the machine's image lacks
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$REPO"/.whl/*.whl
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PY" -c "import anonreid.orchestration" 2> /dev/null; then
  # the package is not installed: the repository's folders as the anonreid namespace (as `make typecheck`)
  mkdir -p "$WORK/ns/anonreid"
  for p in events models nodes gallery proto orchestration; do ln -sfn "$REPO/$p" "$WORK/ns/anonreid/$p"; done
  export PYTHONPATH="$WORK/ns${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec "$PY" -m anonreid.orchestration.gpu_privacy --mode "$MODE" --out "$OUT" --work "$WORK" \
  --budget-s "${BUDGET_S:-540}" --started "$STARTED" ${DATA:+--data "$DATA"}
