#!/usr/bin/env bash
# Run a grid on a GPU machine and keep copying its results into RESULTS_DIR while it
# runs, so a run cut short still returns every finished job's line.
#   RESULTS_DIR=$OUT experiments/glue/run_grid_device.sh experiments/glue/grid_minilm.yml 8 520
set -uo pipefail
cd "$(dirname "$0")/../.."
GRID=$1; JOBS=${2:-8}; LIMIT=${3:-520}
RESULTS_DIR=${RESULTS_DIR:?set RESULTS_DIR}
RUNS=runs/$(basename "$GRID" .yml)
mkdir -p "$RESULTS_DIR" "$RUNS"
nvidia-smi -L || true
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
( while sleep 10; do cp "$RUNS"/results.jsonl "$RESULTS_DIR"/ 2>/dev/null; done ) &
COPIER=$!
timeout "$LIMIT" python experiments/run_grid.py "$GRID" --out "$RUNS" --jobs "$JOBS"
echo "grid exit $?"
kill $COPIER
cp "$RUNS"/results.jsonl "$RUNS"/*.log "$RESULTS_DIR"/ 2>/dev/null
for run in "$RUNS"/*/; do
  name=$(basename "$run"); mkdir -p "$RESULTS_DIR/$name"
  cp "$run"metrics.json "$run"config.json "$run"tat_confusion_* "$RESULTS_DIR/$name"/ 2>/dev/null
  [ -d "$run"submission ] && cp -r "$run"submission "$RESULTS_DIR/$name"/
  [ -d "$run"best/predictions ] && cp "$run"best/predictions/metrics.json "$RESULTS_DIR/$name"/predict_metrics.json
done
exit 0
