#!/usr/bin/env bash
# The GPU check of issue 19, for a fresh GPU machine without internet that has its own
# Python, torch (any version; 2.10+ included) and nvcc. Three steps, each well under 10 min:
#
#   tools/gpu_check.sh --prepare   here, with PyPI: download what the GPU machine lacks into
#                                  .gpu_check/wheels (mmcv 2.1.0 sdist, mmengine, mmdet,
#                                  pycocotools, ... for PY_VERSION, default 3.12; < 64 MiB)
#   tools/gpu_check.sh build       there: install those into .gpu_check/site and build mmcv's
#                                  CUDA ops for the visible GPU (TORCH_CUDA_ARCH_LIST from
#                                  torch.cuda.get_device_capability(), -std=c++20 for torch
#                                  >= 2.10 headers, MAX_JOBS = the CPUs)
#   tools/gpu_check.sh check       there: mmcv's CUDA NMS, the CUDA tests (tests/test_cuda),
#                                  the main job (configs/kvasir_kdml_v3.py on
#                                  data/kvasir_sample, --from-scratch, 512 px, >= 300
#                                  iterations, then tools/test.py) and the benchmark's step
#                                  rows on the GPU (tools/benchmark.py --device cuda)
#
# With this workplace's device tool (a machine stays warm 30 s between calls): prepare here,
# then one call, run(command='bash tools/gpu_check.sh build >$OUT/build.log 2>&1 &&
# TOTAL=300 bash tools/gpu_check.sh check', carry=['.gpu_check/wheels'], timeout_s=600);
# on an H200 build took 277 s and check 444 s with TOTAL=470 (docs/get_started.md).
# Results (logs, metrics, benchmark JSON, summary.txt) go to $OUT when set, else
# .gpu_check/out. DRY_RUN=1 (or --dry-run) prints each command instead of running it;
# PROBE="<cuda 0/1> <arch e.g. 9.0> <torch major.minor> <CPUs>" stands in for the machine
# (tests/test_cuda/test_gpu_check_script.py). ITERS (300) and TOTAL (570 s: each step's time
# limit is capped by what is left of it) tune the check.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dir="$root/.gpu_check"
wheels="$dir/wheels" site="$dir/site" out="${OUT:-$dir/out}"
py="${PYTHON:-python3}"
dry="${DRY_RUN:-0}"
[ "${1:-}" = --dry-run ] && { dry=1; shift; }
step="${1:-}"

run() { if [ "$dry" = 1 ]; then echo "+ $*"; else "$@"; fi; }

# Wheels for the GPU machine: what its image lacks (its own torch, torchvision, numpy,
# opencv, scipy, matplotlib, scikit-learn, tensorboard, pytest are used as they are).
WHEELS=(mmengine==0.10.7 mmdet==3.3.0 pycocotools terminaltables shapely addict yapf
        platformdirs termcolor "setuptools<70")

prepare() {
  local pyver="${PY_VERSION:-3.12}"
  local plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
              --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
  run mkdir -p "$wheels"
  run "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
    --implementation cp "${plat[@]}" -d "$wheels" "${WHEELS[@]}" || return 1
  run "$py" -m pip download -q --no-deps --no-binary :all: -d "$wheels" mmcv==2.1.0 || return 1
  [ "$dry" = 1 ] && return 0
  local mib=$(( $(du -sk "$wheels" | cut -f1) / 1024 ))
  echo "gpu_check.sh: $(ls "$wheels" | wc -l) files, ${mib} MiB in $wheels"
  [ "$mib" -lt 60 ] || { echo "gpu_check.sh: over the 64 MiB a device call carries" >&2; return 1; }
  echo "run there: tools/gpu_check.sh build, then tools/gpu_check.sh check (carry .gpu_check)"
}

# "<cuda 0/1> <arch> <torch major.minor> <CPUs>" of this machine, or PROBE.
probe() {
  if [ -n "${PROBE:-}" ]; then echo "$PROBE"; return; fi
  "$py" - <<'EOF'
import os, torch
cuda = torch.cuda.is_available()
arch = '%d.%d' % torch.cuda.get_device_capability(0) if cuda else 'none'
print(int(cuda), arch, '.'.join(torch.__version__.split('.')[:2]), os.cpu_count())
EOF
}

export PYTHONPATH="$site:$root${PYTHONPATH:+:$PYTHONPATH}"

build() {
  read -r has_gpu arch torch_mm cpus <<<"$(probe)"
  if [ "$has_gpu" != 1 ]; then
    echo "gpu_check.sh build: torch sees no CUDA GPU here; nothing to build" >&2
    return 1
  fi
  local src="$dir/src" std=17
  # torch >= 2.10 headers need C++20; mmcv 2.1.0's setup.py passes -std=c++14/17.
  [ "$(printf '%s\n2.10\n' "$torch_mm" | sort -V | head -1)" = 2.10 ] && std=20
  echo "gpu_check.sh build: sm $arch, torch $torch_mm, C++$std, $cpus jobs"
  run mkdir -p "$site" "$src" "$dir/build"
  run "$py" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" \
    "$wheels"/*.whl || return 1
  run tar -xzf "$wheels/mmcv-2.1.0.tar.gz" -C "$src" || return 1
  run sed -i "s/-std=c++14/-std=c++$std/g; s/-std=c++17/-std=c++$std/g" \
    "$src/mmcv-2.1.0/setup.py"
  # nvcc: the machine's (CUDA_HOME, else the one on PATH, links resolved).
  local nvcc cuda_home="${CUDA_HOME:-}"
  if [ -z "$cuda_home" ]; then
    nvcc="$(command -v nvcc || true)"
    [ -n "$nvcc" ] || { echo "gpu_check.sh build: no nvcc (set CUDA_HOME)" >&2; return 1; }
    cuda_home="$(dirname "$(dirname "$(readlink -f "$nvcc")")")"
  fi
  # ninja -k 0: a source that fails to compile does not stop the others, so one build
  # reports every failing source (each try costs a machine start).
  local ninja
  ninja="$(command -v ninja || true)"
  if [ -n "$ninja" ] && [ "$dry" != 1 ]; then
    mkdir -p "$dir/bin"
    printf '#!/bin/sh\nexec %s -k 0 "$@"\n' "$ninja" >"$dir/bin/ninja"
    chmod +x "$dir/bin/ninja"
    export PATH="$dir/bin:$PATH"
  fi
  run env MMCV_WITH_OPS=1 FORCE_CUDA=1 CUDA_HOME="$cuda_home" TORCH_CUDA_ARCH_LIST="$arch" \
    MAX_JOBS="$cpus" "$py" -m pip wheel -v --no-build-isolation --no-deps --no-index \
    -w "$dir/build" "$src/mmcv-2.1.0" || return 1
  run "$py" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" \
    "$dir/build"/mmcv-2.1.0-*.whl || return 1
  run "$py" -c 'import mmcv, mmdet, mmkd
from mmkd.utils.mmcv_cuda_check import mmcv_cuda_ops_missing
assert not mmcv_cuda_ops_missing(), "mmcv was built without its CUDA ops"
print("mmcv", mmcv.__version__, "with CUDA ops")'
}

# One step of the check: its own time limit (capped by what is left of TOTAL seconds) and
# log; a failure is noted and the next step runs.
status=0
total="${TOTAL:-570}"
part() {
  local name="$1" limit="$2"; shift 2
  [ "$limit" -gt $(( total - SECONDS )) ] && limit=$(( total - SECONDS ))
  if [ "$dry" = 1 ]; then echo "+ [$name, ${limit}s] $*"; return; fi
  if [ "$limit" -lt 20 ]; then
    echo "$name: skipped, the check's $total s are spent" | tee -a "$out/summary.txt"
    status=1; return
  fi
  local start=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "$name: rc=$rc, $((SECONDS - start)) s (log: $name.log)" | tee -a "$out/summary.txt"
  [ "$rc" = 0 ] || status=1
}

check() {
  read -r has_gpu arch torch_mm cpus <<<"$(probe)"
  [ "$has_gpu" = 1 ] || { echo "gpu_check.sh check: no CUDA GPU visible to torch" >&2; return 1; }
  local iters="${ITERS:-300}"
  # The main job: 96 training images, batch 16 -> 6 iterations per epoch.
  local epochs=$(( (iters + 5) / 6 ))
  local work="$dir/kvasir"
  run mkdir -p "$out"
  [ "$dry" = 1 ] || "$py" - >"$out/summary.txt" <<'EOF'
import torch, mmcv, mmengine, mmdet, mmkd
print(f'GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__} (CUDA '
      f'{torch.version.cuda}), mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, '
      f'mmdet {mmdet.__version__}, mmkd {mmkd.__version__}')
EOF
  part cuda_ops 60 "$py" -c 'import torch; from mmcv.ops import nms
b = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.]], device="cuda")
print(nms(b, torch.tensor([0.9, 0.8, 0.7], device="cuda"), 0.5)[1].tolist())'
  part cuda_tests 200 "$py" -m pytest -q -p no:cacheprovider -rs tests/test_cuda
  local opts=(--data-root data/kvasir_sample --from-scratch --cfg-options
              train_dataloader.num_workers=8 val_dataloader.num_workers=8
              test_dataloader.num_workers=8
              model.teacher.test_cfg.score_thr=0.001 model.students.0.test_cfg.score_thr=0.001
              model.students.1.test_cfg.score_thr=0.001)
  part train_main_job 300 "$py" tools/train.py configs/kvasir_kdml_v3.py \
    --work-dir "$work" --overwrite "${opts[@]}" train_cfg.max_epochs="$epochs" \
    train_cfg.val_interval="$epochs" default_hooks.logger.interval=12 \
    custom_hooks.0.end=$(( epochs / 5 )) randomness.seed=0
  part test_main_job 90 "$py" tools/test.py configs/kvasir_kdml_v3.py \
    "$work/epoch_$epochs.pth" --work-dir "$work" "${opts[@]}"
  part bench_gpu 240 "$py" tools/benchmark.py --cases device_steps kdml_students \
    --device cuda --reps 3 --kdml-img-size 224 --det-img-size 512 --out "$out/bench_gpu.json"
  if [ "$dry" != 1 ]; then
    { grep -h "Epoch(train)" "$out/train_main_job.log" | tail -1
      grep -h "Epoch(test)" "$out/test_main_job.log" | tail -1; } >>"$out/summary.txt"
    grep -A40 "^benchmark" "$out/bench_gpu.log" >>"$out/summary.txt"
    cat "$out/summary.txt"
  fi
  return $status
}

case "$step" in
  --prepare|prepare) prepare ;;
  build) build ;;
  check) check ;;
  *) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
