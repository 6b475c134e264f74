#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py args]  (NNODES, NODE_RANK, PORT, MASTER_ADDR)
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

# The project's interpreter (as the Makefile), whether or not the venv is activated.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
if [ ! -x "$PYTHON" ]; then
    echo "tools/dist_train.sh: $PYTHON not found (make env creates it); using python3 from" \
        "PATH, which needs torch, mmengine, mmdet and mmkd installed" >&2
    PYTHON=python3
fi

PYTHONPATH="$ROOT":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" --nproc_per_node="$GPUS" --master_port="$PORT" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
