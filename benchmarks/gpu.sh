#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: what `refimpl check` cannot run without one (it lists that
# code as "not run here": the CuPy kernels built from CUDA source and the .cu files) — the
# full CuPy conformance (`cupy` and `cupy-raw`), the CuPy test suite and the GPU benchmarks —
# with what the README's GPU section records (device, date, commit). Writes its reports into
# $1 (default ./gpu-report); exits non-zero when the GPU is not usable or any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-report}

if ! command -v nvidia-smi > /dev/null; then
  echo "gpu.sh: nvidia-smi not found: run this on a machine with an NVIDIA GPU" >&2
  exit 2
fi
if [ ! -x .venv/bin/refimpl ]; then # an existing environment is reused as it is
  python3 -m venv .venv
  .venv/bin/pip install -q -e ".[test]"
fi
. .venv/bin/activate
# without a usable device `refimpl check` would check `cupy[host]` and pass: stop here instead
python -c 'import sys, refimpl_cupy; ok, why = refimpl_cupy.gpu_available(); sys.exit(0 if ok else f"gpu.sh: CuPy cannot use the GPU: {why}")'

mkdir -p "$out"
commit=$(git rev-parse HEAD)
[ -z "$(git status --porcelain --untracked-files=no)" ] || commit="$commit (with uncommitted changes)"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit: $commit"
  echo "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
} | tee "$out/device.txt"

failed=()
step() { # step NAME COMMAND...: its output goes to $out/NAME.txt; a failure is counted, not fatal
  local name=$1
  shift
  echo "== $name: $*"
  if "$@" > "$out/$name.txt" 2>&1; then
    tail -n 1 "$out/$name.txt"
  else
    echo "FAILED (exit $?): see $out/$name.txt"
    failed+=("$name")
  fi
}
step check refimpl check --quiet --backend cupy --backend cupy-raw --json "$out/check.json"
if grep -q "^not run here" "$out/check.txt"; then # the check itself says it skipped GPU code
  echo "FAILED: the check did not run every GPU kernel: see $out/check.txt"
  failed+=("check: not run here")
fi
step bench refimpl bench --backend cupy --backend cupy-raw --backend numba --json "$out/bench.json"
step pytest python -m pytest -q --refimpl-backend cupy --refimpl-backend cupy-raw

if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu.sh: failed: ${failed[*]} (reports in $out)" >&2
  exit 1
fi
echo "gpu.sh: all passed (reports in $out)"
