#!/usr/bin/env bash
# The GPU check: everything edgekd does on an NVIDIA GPU, in one run of at most 8 minutes, with one report.
#
#   pip install -e '.[train,gpu,tensorrt,dev]'     # on a Jetson: JetPack's TensorRT and onnxruntime-gpu instead
#   bash benchmarks/gpu_check.sh [REPORT.md]       # default gpu_report.md
#
# It runs the GPU-marked tests (tests/test_gpu.py): a CUDA AMP training step in bf16 and fp16; a DDP step with
# nccl where more than one GPU exists; strongly typed TensorRT engines of each precision, built and checked
# against onnxruntime's CPU; early exit on the CUDA provider, the TensorRT provider and the native engines, with
# the host copies per batch and batch-1 latency against the full model. The report lists every test's outcome
# (a skip with its reason), the figures they measured and the versions installed. On a machine without a
# GPU it says so and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
report=${1:-gpu_report.md}
python=${PYTHON:-python}

if ! seen=$("$python" benchmarks/gpu_report.py detect); then
    echo "no CUDA GPU here ($seen): nothing to check. Run this script on a machine with an NVIDIA GPU."
    exit 0
fi
echo "GPU: $seen"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ ! -f test-artifacts/runtime-fixture/tiny_bundle/manifest.json ]; then
    echo "building the tests' tiny bundle (about a minute)"
    "$python" tests/runtime_fixture.py || exit 1
fi
EDGEKD_GPU_REPORT="$work/figures.jsonl" timeout 450 "$python" -m pytest -m gpu tests/test_gpu.py -v -rs \
    -p no:cacheprovider --junitxml "$work/junit.xml"
status=$?
"$python" benchmarks/gpu_report.py render "$work/figures.jsonl" "$work/junit.xml" "$report" || exit 1
echo "report: $report"
exit $status
