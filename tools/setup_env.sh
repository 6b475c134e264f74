#!/usr/bin/env bash
# Create (or reuse) the project virtualenv `.venv` with the verified stack of DESIGN.md:
# torch 2.9.1 / torchvision 0.24.1, mmcv 2.1.0 with ops (prebuilt wheel from
# ../shared/wheelhouse when present, else built from the PyPI sdist), mmengine 0.10.7,
# mmdet 3.3.0, pycocotools, opencv, and mmkd itself in editable mode.
# A second run only checks the stamp file and returns.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.mmkd-env-v2"  # bump when requirements.txt changes
py="${PYTHON:-python3}"

if [ -f "$stamp" ] && "$venv/bin/python" -c 'import mmkd, mmdet, mmcv.ops' 2>/dev/null; then
  exit 0
fi

[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q "pip>=23" "setuptools<70" wheel
"${pip[@]}" install -q torch==2.9.1 torchvision==0.24.1

find_links=()
wheelhouse="$root/../shared/wheelhouse"
[ -d "$wheelhouse" ] && find_links=(--find-links "$wheelhouse")
if ! "$venv/bin/python" -c 'import mmcv.ops' 2>/dev/null; then
  "${pip[@]}" install -q ninja psutil
  # No build isolation: mmcv's setup.py compiles its ops against the torch installed above.
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
    "${pip[@]}" install -q --no-build-isolation "${find_links[@]}" mmcv==2.1.0
fi
"${pip[@]}" install -q -r "$root/requirements.txt"
"${pip[@]}" install -q --no-build-isolation --no-deps -e "$root"
"$venv/bin/python" -c 'import mmkd, mmdet, mmcv.ops' && touch "$stamp"
