#!/usr/bin/env bash
# The images' entry point. Runs from the repository root (/app in the image), so the
# defaults that are relative paths (data/, checkpoints/) resolve as in the
# README.
#
#   train ARGS...            python train.py ARGS...
#   predict ARGS...          python predict.py ARGS...
#   prepro ARGS...           python prepro_std.py ARGS...
#   task TASKS [ARGS...]     experiments/glue/run_task.sh TASKS [ARGS...]
#   torchrun ARGS...         torchrun ARGS... (e.g. torchrun --nproc_per_node 4 train.py ...)
#   anything else            executed as given (bash, python -m pytest, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON=${PYTHON:-python}  # run_task.sh reads it too

case "${1:-}" in
    train) shift; exec "$PYTHON" train.py "$@" ;;
    predict) shift; exec "$PYTHON" predict.py "$@" ;;
    prepro) shift; exec "$PYTHON" prepro_std.py "$@" ;;
    task) shift; exec experiments/glue/run_task.sh "$@" ;;
    "" | -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
        ;;
    *) exec "$@" ;;  # torchrun, bash, python, ...: as given
esac
