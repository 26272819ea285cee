#!/usr/bin/env bash
# Regenerate every lock in this folder from pyproject.toml, with hashes, one per set of packages:
#   runtime.lock  the service alone (serve, demo, ingest, search; default numpy-only embedder)
#   st.lock       + sentence-transformers models (torch==2.13.0, the CPU wheel)
#   eval.lock     + `invekto-knowledge eval` (ragas, ranx, matplotlib, scikit-learn)
#   otel.lock     + OpenTelemetry tracing (INVEKTO_OTEL=1: SDK and OTLP/HTTP exporter)
#   test.lock     + what the tests import (runs every test that needs no other extra; Python 3.11 and 3.12)
#   dev.lock      everything: the whole test suite, ruff, mypy
# Versions already pinned in dev.lock are kept (it is the constraint), so the sets never disagree:
# to upgrade a package, change its pin in pyproject.toml, or delete its line from dev.lock, and rerun.
# The resolver is uv (installed into a throwaway venv). The torch CPU wheel lies in /opt/wheels on this
# project's machines, where pip finds it through the `--find-links` line of st.lock and dev.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-/opt/wheels}
TOOL=$(mktemp -d)
trap 'rm -rf "$TOOL"' EXIT
python3.11 -m venv "$TOOL/venv"
"$TOOL/venv/bin/pip" install -q uv
UV=$TOOL/venv/bin/uv
CONSTRAINT=$TOOL/pins.txt
# The first run started from the single requirements.lock the project had before the sets.
SEED=requirements/dev.lock
[ -f "$SEED" ] || SEED=requirements.lock
if [ -f "$SEED" ]; then grep -E '^[A-Za-z0-9]' "$SEED" | sed 's/ .*//' >"$CONSTRAINT"; else : >"$CONSTRAINT"; fi

compile() {  # compile NAME [uv options]
  local name=$1
  shift
  "$UV" pip compile pyproject.toml "$@" --python-version 3.11.7 --python-platform x86_64-manylinux_2_28 \
    --find-links "$WHEELS" --constraint "$CONSTRAINT" --generate-hashes --no-annotate -q \
    --custom-compile-command "requirements/compile.sh" -o "requirements/$name.lock"
}
compile dev --extra dev --emit-find-links
grep -E '^[A-Za-z0-9]' requirements/dev.lock | sed 's/ .*//' >"$CONSTRAINT"
compile runtime
compile st --extra st --emit-find-links
compile eval --extra eval
compile otel --extra otel
compile test --extra test
# The runtime and test sets must resolve the same on Python 3.12 (CI installs test.lock there too).
for name in runtime test; do
  extra=()
  [ "$name" = runtime ] || extra=(--extra "$name")
  "$UV" pip compile pyproject.toml "${extra[@]}" --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
    --constraint "$CONSTRAINT" --no-header --no-annotate -q -o "$TOOL/$name-312.txt"
  if ! diff <(grep -E '^[A-Za-z0-9]' "requirements/$name.lock" | sed 's/ .*//') <(grep -E '^[A-Za-z0-9]' "$TOOL/$name-312.txt" | sed 's/ .*//'); then
    echo "requirements/$name.lock resolves differently on Python 3.12: give it its own lock" >&2
    exit 1
  fi
done
