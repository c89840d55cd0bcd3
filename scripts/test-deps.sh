#!/usr/bin/env bash
# What the test suite needs beyond Rust, as Debian packages, each checked
# by what the tests use:
#
#   scripts/test-deps.sh            name what is missing (exit 1 if anything is)
#   scripts/test-deps.sh --install  install what is missing with apt-get (as root)
#
# scripts/test.sh runs it first; .ci/run with --install.
set -euo pipefail

# package  |  how to tell it is here
checks=(
  "openssl|command -v openssl"
  "procps|command -v pgrep"
  "chromium|test -x /usr/bin/chromium"
  "chromium-driver|test -x /usr/bin/chromedriver"
  "postgresql|ls /usr/lib/postgresql/*/bin/initdb"
  "python3-prometheus-client|/usr/bin/python3 -c 'import prometheus_client.openmetrics.parser'"
  "python3-openpyxl|/usr/bin/python3 -c 'import openpyxl'"
  "poppler-utils|command -v pdftotext"
  "fonts-noto-cjk|test -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
)

missing=()
for c in "${checks[@]}"; do
  pkg=${c%%|*}
  test=${c#*|}
  bash -c "$test" >/dev/null 2>&1 || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ "${1:-}" == "--install" ]]; then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "the tests need these Debian packages, and installing them needs root and apt-get: ${missing[*]}" >&2
    exit 1
  fi
  echo "installing the test suite's packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "missing Debian packages the tests need: ${missing[*]}" >&2
echo "  install them: sudo apt-get install ${missing[*]}" >&2
exit 1
