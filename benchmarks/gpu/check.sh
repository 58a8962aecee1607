#!/usr/bin/env bash
# The GPU check (issue 22) as one command, from the repository root of a bare GPU machine
# whose working tree carries .whl/ (benchmarks/gpu/prepare_wheels.sh fills it here):
#
#   bash benchmarks/gpu/check.sh                   # GPU: at most ~7.5 min (steps get 420 s)
#   bash benchmarks/gpu/check.sh --cpu-fallback    # a CPU machine, CPU-sized defaults
#
# Installs the carried wheels the machine lacks into /tmp/kpms-site (once per machine),
# then runs benchmarks/gpu/check.py with the remaining arguments. Tables and the log go to
# $OUT when set (the device tool's folder that comes back), else benchmarks/results/gpu.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT_DIR"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
SITE=/tmp/kpms-site
export PYTHONUNBUFFERED=1 PYTHONPATH="$SITE:$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"

{
    echo "[check.sh] $(date -u +%FT%TZ) $(uname -m) $("$PYTHON" --version 2>&1) ($PYTHON)"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    fi
    have_kpms() { "$PYTHON" -c 'import importlib.util as u; raise SystemExit(u.find_spec("keypoint_moseq") is None or u.find_spec("jax_moseq") is None)'; }
    if ! have_kpms; then
        if ! ls .whl/*.whl >/dev/null 2>&1; then
            echo "[check.sh] keypoint-moseq is not installed and no .whl/ was carried:" \
                "run benchmarks/gpu/prepare_wheels.sh here and carry .whl" >&2
            exit 3
        fi
        start=$(date +%s)
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" .whl/*.whl || exit 3
        echo "[check.sh] installed $(ls .whl/*.whl | wc -l) carried wheels into $SITE in $(( $(date +%s) - start )) s"
        have_kpms || { echo "[check.sh] keypoint-moseq still not importable" >&2; exit 3; }
    fi
    "$PYTHON" benchmarks/gpu/check.py --out "$OUT_DIR" "$@"
} 2>&1 | tee "$OUT_DIR/check.log"
exit "${PIPESTATUS[0]}"
