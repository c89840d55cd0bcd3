#!/usr/bin/env bash
# Run the whole test suite: unit tests, CLI tests, and end-to-end tests with
# a real hub and real agents on 127.0.0.1 (port 0, temporary directories).
#
#   scripts/test.sh            all tests
#   scripts/test.sh NAME       only tests whose name contains NAME
set -euo pipefail
cd "$(dirname "$0")/.."

profile=default
[[ "${CI:-}" == "true" ]] && profile=ci

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile "$profile" "$@"
else
  echo "(cargo-nextest not found; using cargo test)"
  cargo test --workspace --locked -- --test-threads 2 "$@"
fi
