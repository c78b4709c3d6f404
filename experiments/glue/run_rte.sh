#!/usr/bin/env bash
# RTE alone with the default recipe; extra flags go to train.py (e.g. --adv tat).
exec "$(dirname "$0")/run_task.sh" rte "$@"
