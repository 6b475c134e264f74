#!/usr/bin/env bash
# Create (or reuse) a virtualenv with one of mmkd's tested stacks, then install mmkd into it
# in editable mode. A second run only checks the stamp file and returns.
#
#   STACK=default (venv .venv): torch 2.9.1 / torchvision 0.24.1, mmcv 2.1.0 with ops,
#                 mmengine 0.10.7, mmdet 3.3.0 (the verified stack of DESIGN.md)
#   STACK=torch21 (venv .venv-torch21): torch 2.1.2 / torchvision 0.16.2 and numpy < 2 — the
#                 last torch with OpenMMLab's prebuilt mmcv 2.1.0 CUDA wheels, i.e. most
#                 existing mmdet 3.3 environments — with the oldest mmengine / mmdet mmkd claims
#   VENV=path     overrides the venv folder; PYTHON the interpreter that creates it.
#
# mmcv 2.1.0 has no wheel on PyPI: it comes from ../shared/wheelhouse when one fits, else it is
# built from the sdist against the torch installed here. With a CUDA GPU visible to torch the
# build compiles the CUDA ops (nvcc from CUDA_HOME, else the nvidia-cuda-nvcc wheel for torch's
# CUDA version), for the visible GPU's architecture, with C++20 when torch's headers need it
# (torch >= 2.10; mmcv 2.1.0's setup.py forces C++17 otherwise). Without a GPU it builds the CPU
# ops (FORCE_CUDA=0). DRY_RUN=1 prints the decisions and installs nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stack="${STACK:-default}"
case "$stack" in
  default) venv="${VENV:-$root/.venv}"; torch_pins=(torch==2.9.1 torchvision==0.24.1) ;;
  torch21) venv="${VENV:-$root/.venv-torch21}"
           torch_pins=(torch==2.1.2 torchvision==0.16.2 "numpy<2") ;;
  *) echo "setup_env.sh: STACK=$stack is not a tested stack (default, torch21)" >&2; exit 2 ;;
esac
stamp="$venv/.mmkd-env-v3-$stack"  # bump when requirements.txt changes
py="${PYTHON:-python3}"
dry="${DRY_RUN:-0}"

if [ "$dry" != 1 ] && [ -f "$stamp" ] && \
   "$venv/bin/python" -c 'import mmkd, mmdet, mmcv.ops' 2>/dev/null; then
  exit 0
fi

run() { if [ "$dry" = 1 ]; then echo "+ $*"; else "$@"; fi; }

if [ "$dry" != 1 ]; then
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  pip=("$venv/bin/python" -m pip --disable-pip-version-check)
  "${pip[@]}" install -q "pip>=23" "setuptools<70" wheel
  "${pip[@]}" install -q "${torch_pins[@]}"
  probe_py="$venv/bin/python"
else
  pip=(pip)
  probe_py="${PROBE_PYTHON:-$py}"
fi

# What torch sees: "<cuda available 0/1> <torch CUDA version or none> <sm arch or none>
# <torch major.minor>"; PROBE overrides it (tests of this script's decisions).
probe="${PROBE:-$("$probe_py" - <<'EOF'
import torch
cuda = torch.cuda.is_available()
arch = '%d.%d' % torch.cuda.get_device_capability(0) if cuda else 'none'
print(int(cuda), torch.version.cuda or 'none', arch, '.'.join(torch.__version__.split('.')[:2]))
EOF
)}"
read -r has_gpu cuda_version gpu_arch torch_mm <<<"$probe"

build_env=(MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}")
if [ "$has_gpu" = 1 ]; then
  if [ -z "${CUDA_HOME:-}" ] || [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
    # pip's torch wheels bring the CUDA runtime but no compiler: take nvcc from NVIDIA's wheel
    # of torch's CUDA version (its nvcc, headers and crt land in site-packages/nvidia/cuda_nvcc).
    run "${pip[@]}" install -q "nvidia-cuda-nvcc-cu${cuda_version%%.*}==${cuda_version}.*" \
      "nvidia-cuda-runtime-cu${cuda_version%%.*}==${cuda_version}.*"
    if [ "$dry" = 1 ]; then
      CUDA_HOME='<site-packages>/nvidia/cuda_nvcc'
    else
      nv="$("$venv/bin/python" -c 'import importlib.util as u; print(list(u.find_spec("nvidia").submodule_search_locations)[0])')"
      CUDA_HOME="$nv/cuda_nvcc"
      # the runtime headers (cuda_runtime.h) come with the runtime wheel
      export CPATH="$nv/cuda_runtime/include${CPATH:+:$CPATH}"
    fi
  fi
  build_env+=(FORCE_CUDA=1 CUDA_HOME="$CUDA_HOME" TORCH_CUDA_ARCH_LIST="$gpu_arch")
  echo "setup_env.sh: CUDA GPU (sm $gpu_arch, torch CUDA $cuda_version): mmcv's CUDA ops with nvcc from $CUDA_HOME"
else
  build_env+=(FORCE_CUDA=0)
  echo "setup_env.sh: no CUDA GPU visible to torch: mmcv's CPU ops"
fi
# torch >= 2.10 headers need C++20; mmcv 2.1.0's setup.py adds -std=c++14/17.
cxx20=0
if [ "$(printf '%s\n2.10\n' "$torch_mm" | sort -V | head -1)" = 2.10 ]; then
  cxx20=1
  echo "setup_env.sh: torch $torch_mm: mmcv built with -std=c++20"
fi

find_links=()
wheelhouse="$root/../shared/wheelhouse"
[ -d "$wheelhouse" ] && [ "$stack" = default ] && [ "$has_gpu" = 0 ] && \
  find_links=(--find-links "$wheelhouse")  # the prebuilt wheel: CPU ops, torch 2.9.1, cp311

if [ "$dry" = 1 ] || ! "$venv/bin/python" -c 'import mmcv.ops' 2>/dev/null; then
  run "${pip[@]}" install -q ninja psutil
  if [ "$cxx20" = 1 ]; then
    src="$(mktemp -d)"
    run "${pip[@]}" download -q --no-deps --no-binary :all: -d "$src" mmcv==2.1.0
    run tar -xzf "$src/mmcv-2.1.0.tar.gz" -C "$src"
    run sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' "$src/mmcv-2.1.0/setup.py"
    run env "${build_env[@]}" "${pip[@]}" install -q --no-build-isolation "$src/mmcv-2.1.0"
  else
    # No build isolation: mmcv's setup.py compiles its ops against the torch installed above.
    run env "${build_env[@]}" "${pip[@]}" install -q --no-build-isolation "${find_links[@]}" \
      mmcv==2.1.0
  fi
fi
[ "$dry" = 1 ] && exit 0
"${pip[@]}" install -q -r "$root/requirements.txt" "${torch_pins[@]}"
"${pip[@]}" install -q --no-build-isolation --no-deps -e "$root"
"$venv/bin/python" -c 'import mmkd, mmdet, mmcv.ops' && touch "$stamp"
