#!/usr/bin/env bash
# Run the whole test suite: unit tests, CLI tests, and end-to-end tests with
# a real hub and real agents on 127.0.0.1 (port 0, temporary directories).
#
#   scripts/test.sh            all tests (the exchange tests on both suites)
#   scripts/test.sh NAME       only tests whose name contains NAME
#
# First it makes sure of the Debian packages the tests use beyond Rust
# (scripts/test-deps.sh: Chromium and chromedriver, PostgreSQL, openssl,
# the Prometheus and openpyxl readers for Python): run as root it installs
# the missing ones; otherwise it names them. A test whose tool is missing
# fails under CI=true; elsewhere it is skipped, and the skipped tests are
# named and counted at the end.
#
# The GM half runs even when the first half failed; the script then exits
# non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -eq 0 && -z "${GONGWEN_NO_INSTALL:-}" ]]; then
  scripts/test-deps.sh --install || exit 1
elif ! scripts/test-deps.sh; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "CI runs every test: install the packages above first" >&2
    exit 1
  fi
  echo "(going on: the tests that need them will be skipped and named at the end)" >&2
fi

profile=default
[[ "${CI:-}" == "true" ]] && profile=ci

# Tests that skip for a missing tool write their names here.
export GONGWEN_SKIPPED
GONGWEN_SKIPPED=$(mktemp "${TMPDIR:-/tmp}/gongwen-skipped.XXXXXX")
trap 'rm -f "$GONGWEN_SKIPPED"' EXIT

# The document exchange, receipt, sign-for, recall, escalation, answer,
# store, enrollment, link and renewal tests run a second time on the GM
# suite (SM2/SM3/SM4): the same tests, with the deployment's CA made for
# gm (GONGWEN_TEST_SUITE).
gm_tests=(--test exchange --test signfor --test answers --test store --test enroll --test link --test renewal)

failed=()
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile "$profile" "$@" || failed+=("the tests")
  echo "==> the exchange tests again, on the GM suite"
  GONGWEN_TEST_SUITE=gm cargo nextest run -p gongwen-tests --locked --profile "$profile" --no-tests pass "${gm_tests[@]}" "$@" ||
    failed+=("the GM tests")
else
  echo "(cargo-nextest not found; using cargo test)"
  cargo test --workspace --locked -- --test-threads 2 "$@" || failed+=("the tests")
  GONGWEN_TEST_SUITE=gm cargo test -p gongwen-tests --locked "${gm_tests[@]}" -- --test-threads 2 "$@" ||
    failed+=("the GM tests")
fi

if [[ -s "$GONGWEN_SKIPPED" ]]; then
  count=$(sort -u "$GONGWEN_SKIPPED" | wc -l)
  echo
  echo "==> SKIPPED: $count test(s) did not run for want of a tool (counted above as passed):"
  sort -u "$GONGWEN_SKIPPED" | while IFS=$'\t' read -r test package; do
    echo "    $test  (needs the Debian package $package)"
  done
  packages=$(cut -f2 "$GONGWEN_SKIPPED" | sort -u | tr '\n' ' ')
  echo "  install them and run again: sudo apt-get install $packages"
fi

# No browser the tests started may outlive them.
if pgrep -f -- '--user-data-dir=.*/\.tmp' >/dev/null 2>&1; then
  echo "browser processes were left behind:" >&2
  pgrep -af -- '--user-data-dir=.*/\.tmp' >&2
  failed+=("browser clean-up")
fi

if [[ ${#failed[@]} -gt 0 ]]; then
  echo
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
