#!/usr/bin/env bash
# Builds the probe without an engine, with QuickJS (rquickjs) and with Boa, in release as the
# functions are built, and prints each binary's size and the probe's start-up and per-call
# figures (three runs each). Not part of `make bench`: Boa takes minutes to build.
set -euo pipefail
cd "$(dirname "$0")"
for variant in none quickjs boa wasm schema plugins; do
  features=()
  [ "$variant" != none ] && features=(--features "$variant")
  cargo build -q --release "${features[@]}"
  cp target/release/js-engines "target/js-engines-$variant"
  size=$(stat -c %s "target/js-engines-$variant")
  for _ in 1 2 3; do
    echo "{\"engine\": \"$variant\", \"binary_bytes\": $size, \"run\": $("target/js-engines-$variant")}"
  done
done
