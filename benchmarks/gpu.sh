#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: full CuPy conformance and the GPU benchmarks, with what
# the README's GPU section records (device, date, commit). Writes its reports into $1
# (default ./gpu-report).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-report}
mkdir -p "$out"
python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[test]" || exit 1
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} > "$out/device.txt"
refimpl check --quiet --backend cupy --backend cupy-raw --json "$out/check.json" > "$out/check.txt" 2>&1
echo "check exit: $?" >> "$out/check.txt"
refimpl bench --backend cupy --backend cupy-raw --backend numba --json "$out/bench.json" > "$out/bench.txt" 2>&1
python -m pytest -q -m "not slow" --refimpl-backend cupy --refimpl-backend cupy-raw > "$out/pytest.txt" 2>&1
echo "pytest exit: $?" >> "$out/pytest.txt"
tail -n 3 "$out"/*.txt
