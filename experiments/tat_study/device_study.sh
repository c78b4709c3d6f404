#!/usr/bin/env bash
# The TAT study's grid on a lent GPU machine, for as long as it is lent.
#
# Here, first: commit, then `python experiments/tat_study/device_bundle.py pack`.
# There (the device tool's `run`, carrying .device_bundle, from the repository root):
#
#     LIMIT=500 bash experiments/tat_study/device_study.sh      # with timeout_s 600
#
# It unpacks the model and the data, then runs the grid's units that
# $RESULTS lacks, $JOBS at a time on the one GPU, with seeds $SEEDS, and stops
# the runner $LIMIT seconds after it started (a unit still running then is
# lost: the next call starts it again). Every 20 s, and at the end, the finished
# units' JSONs go to $OUT/results.tgz, the runner's log to $OUT/runner.log.
# Back here:
#
#     mkdir -p /tmp/h200 && tar -xzf FILES_AT/results.tgz -C /tmp/h200
#     python experiments/tat_study/run_study.py experiments/tat_study/grid.yml \
#         --seeds 1,2,3,4,5 --results experiments/tat_study/results_h200 \
#         --adopt /tmp/h200/results_h200 --commit
#     python experiments/tat_study/report.py --results experiments/tat_study/results_h200 \
#         --out experiments/tat_study/h200
#
# Environment: OUT (set by the device tool), JOBS (15), SEEDS (1,2,3,4,5), ONLY
# (unit names, comma-separated: that order), LIMIT (500), PYTHON (python3),
# RESULTS (experiments/tat_study/results_h200: finished units are skipped), MODEL
# (/tmp/minilm), EXTRA (more train.py flags, e.g. "--epochs 1" for a smoke run),
# GRID (experiments/tat_study/grid.yml), RUNS (/tmp/tat_study_runs: checkpoints and logs).
set -euo pipefail
: "${OUT:?the device tool sets OUT: the folder whose files come back}"
JOBS=${JOBS:-15}
SEEDS=${SEEDS:-1,2,3,4,5}
LIMIT=${LIMIT:-500}
PYTHON=${PYTHON:-python3}
RESULTS=${RESULTS:-experiments/tat_study/results_h200}
MODEL=${MODEL:-/tmp/minilm}
GRID=${GRID:-experiments/tat_study/grid.yml}
RUNS=${RUNS:-/tmp/tat_study_runs}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
commit=$("$PYTHON" experiments/tat_study/device_bundle.py unpack --bundle .device_bundle \
    --root . --model "$MODEL" |
    tee /dev/stderr | sed -n 's/^code_commit //p')
mkdir -p "$RESULTS"
results_dir=$(cd "$RESULTS" && pwd)

send_back() {  # atomically: a copy cut off half-way never replaces the last whole one
    tar -czf "$OUT/.results.tgz" -C "$(dirname "$results_dir")" "$(basename "$results_dir")"
    mv "$OUT/.results.tgz" "$OUT/results.tgz"
}
(while sleep 20; do send_back; done) &
sender=$!

status=0
timeout -s TERM -k 30 "$LIMIT" "$PYTHON" experiments/tat_study/run_study.py \
    "$GRID" --code_dir . --results "$RESULTS" --runs "$RUNS" \
    --jobs "$JOBS" --seeds "$SEEDS" --code_commit "$commit" --save_every 0 \
    --train_flags "--init_checkpoint $MODEL ${EXTRA:-}" ${ONLY:+--only "$ONLY"} \
    >"$OUT/runner.log" 2>&1 || status=$?
kill "$sender" 2>/dev/null || true
send_back
tail -n 40 "$OUT/runner.log"
echo "runner exit $status; $(ls "$RESULTS" | wc -l) unit result(s) in $RESULTS"
