#!/usr/bin/env bash
# The prepared GPU check of issue #14 (docs/performance.md): HuBERT Base bf16 vs fp32 throughput,
# a KS recipe on CUDA vs CPU, peak GPU memory. Finishes in < 8 minutes (hard limit 470 s, each
# part under its own timeout); results as JSON + text in OUT_DIR. No network needed.
#
#   tools/gpu-check.sh OUT_DIR [gpu_check options]      e.g. tools/gpu-check.sh "$OUT"
#   tools/gpu-check.sh OUT_DIR --quick                  CPU smoke test (tiny sizes)
#
# Python: $PYTHON, else the repo's .venv, else python3. If `superb` is not importable there, a
# non-editable copy is installed offline into a temporary folder (pip --no-index --no-deps), with
# any wheels in $WHEELS (default: the repo's .whl/, e.g. soundfile, cffi, pycparser and
# espeakng-loader, which the GPU machine's image lacks).
set -u
out="${1:-${OUT:-}}"
if [ -z "$out" ]; then echo "usage: $0 OUT_DIR [gpu_check options]" >&2; exit 2; fi
shift || true
repo="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then py="$repo/.venv/bin/python"; else py=python3; fi
fi
export PYTHONUNBUFFERED=1
wheels="${WHEELS:-$repo/.whl}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ -d "$wheels" ] && ls "$wheels"/*.whl >/dev/null 2>&1 && [ "$py" = python3 -o -n "${WHEELS:-}" ]; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$tmp/deps" "$wheels"/*.whl \
    >"$out/install.log" 2>&1 || { echo "gpu-check: installing $wheels failed (see $out/install.log)" >&2; exit 2; }
  export PYTHONPATH="$tmp/deps${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -n "${SUPERB_GPU_CHECK_INSTALL:-}" ] || ! (cd "$tmp" && "$py" -c "import superb.benchmark.perf.gpu_check") 2>/dev/null; then
  # build from a copy so that nothing is written into the checkout
  mkdir -p "$tmp/src"
  (cd "$repo" && tar --exclude=./.git --exclude=./.venv --exclude=./runs --exclude=./.whl --exclude='*.egg-info' \
     --exclude=./build -cf - .) | (cd "$tmp/src" && tar -xf -)
  "$py" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$tmp/superb" "$tmp/src" \
    >>"$out/install.log" 2>&1 || { echo "gpu-check: installing superb failed (see $out/install.log)" >&2; exit 2; }
  export PYTHONPATH="$tmp/superb${PYTHONPATH:+:$PYTHONPATH}"
fi
{ nvidia-smi || echo "no nvidia-smi"; } >"$out/nvidia-smi.txt" 2>&1
cd "$tmp"  # the installed package, not a same-named folder of the cwd
set -o pipefail
timeout -k 10 470 "$py" -m superb.benchmark.perf.gpu_check "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
rc=$?
{ echo; nvidia-smi --query-gpu=name,memory.used,memory.total,temperature.gpu,power.draw --format=csv 2>&1; } \
  >>"$out/nvidia-smi.txt" 2>&1 || true
if [ "$rc" = 124 ]; then echo "gpu-check: stopped at the 470 s limit; partial results in $out" >&2; fi
exit "$rc"
