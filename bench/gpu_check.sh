#!/usr/bin/env bash
# The one-shot device check of issue #18: run from the repository root on a bare GPU machine
# (no network), it installs tinycnn (no dependencies fetched) and runs bench/gpu_check.py,
# which writes $OUT/log and $OUT/summary.json. Every stage has its own time cap; the whole
# stays under 8 minutes on one H200.
#
#   bench/gpu_check.sh              # on the GPU machine ($OUT defaults to ./gpu_check_out)
#   bench/gpu_check.sh --dry-run    # here: the same stages on the CPU stand-in, tiny sizes
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
export OUT
if [ "${1:-}" != "--dry-run" ]; then
    echo "== install: pip install --no-deps --no-build-isolation -e ." >>"$OUT/log"
    timeout 120 python3 -m pip install --no-deps --no-build-isolation -e . >>"$OUT/log" 2>&1 \
        || echo "install failed (exit $?): the stages run on the source tree" >>"$OUT/log"
fi
timeout 480 python3 -m bench.gpu_check --out "$OUT" "$@"
status=$?
echo "gpu_check: exit $status; see $OUT/log and $OUT/summary.json"
exit $status
