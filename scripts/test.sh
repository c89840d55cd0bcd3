#!/usr/bin/env bash
# Run the whole test suite: unit tests, CLI tests, and end-to-end tests with
# a real hub and real agents on 127.0.0.1 (port 0, temporary directories).
#
#   scripts/test.sh            all tests (the exchange tests on both suites)
#   scripts/test.sh NAME       only tests whose name contains NAME
set -euo pipefail
cd "$(dirname "$0")/.."

profile=default
[[ "${CI:-}" == "true" ]] && profile=ci

# The document exchange, receipt, sign-for, recall, escalation, answer,
# store, enrollment, link and renewal tests run a second time on the GM
# suite (SM2/SM3/SM4): the same tests, with the deployment's CA made for
# gm (GONGWEN_TEST_SUITE).
gm_tests=(--test exchange --test signfor --test answers --test store --test enroll --test link --test renewal)

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile "$profile" "$@"
  echo "==> the exchange tests again, on the GM suite"
  GONGWEN_TEST_SUITE=gm cargo nextest run -p gongwen-tests --locked --profile "$profile" --no-tests pass "${gm_tests[@]}" "$@"
else
  echo "(cargo-nextest not found; using cargo test)"
  cargo test --workspace --locked -- --test-threads 2 "$@"
  GONGWEN_TEST_SUITE=gm cargo test -p gongwen-tests --locked "${gm_tests[@]}" -- --test-threads 2 "$@"
fi
