#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer, nightly) of every parser
# that reads outside input: wire frames, document headers, receipts, the
# clerk's sidecar and the config files. Not part of CI.
#
#   scripts/fuzz.sh                 600 s per target, all targets
#   scripts/fuzz.sh 60              60 s per target
#   scripts/fuzz.sh 600 frame       one target
#
# A crash leaves its input in fuzz/artifacts/<target>/; add it to the
# target's regression test (common/tests/fuzz_regressions.rs) when fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(frame envelope receipt sidecar config)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "==> $t for ${secs}s"
  (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1) \
      > "fuzz/logs/$t.log" 2>&1 || { echo "    $t FAILED: see fuzz/logs/$t.log"; tail -30 "fuzz/logs/$t.log"; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "fuzz/logs/$t.log" | sed 's/^/    /'
done
