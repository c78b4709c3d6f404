#!/usr/bin/env bash
# One multi-task model over RTE, MRPC, STS-B and CoLA (the tasks whose train sets are here).
exec "$(dirname "$0")/run_task.sh" "${TASKS:-rte,mrpc,stsb,cola}" "$@"
