#!/usr/bin/env bash
# Benchmarks: the real hub and agents (release build, separate processes,
# real files) against raw QUIC, scp and fsync baselines measured in the same
# run. A full run writes BENCHMARKS.md and bench-results.json at the
# repository root; --quick and --only runs write them to target/bench-quick/.
#
#   scripts/bench.sh           the full run (1 GiB, 194 agents, 10,000 documents,
#                              10,000 simulated units against one hub)
#   scripts/bench.sh --quick   reduced sizes, about two minutes
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x /usr/sbin/sshd ]] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing openssh-server for the scp baseline"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client; } >/dev/null 2>&1 \
    || echo "    could not install it; the scp row will say so"
fi
echo "==> building (release)"
cargo build --release --locked --bins --quiet
# 194 agents and their sockets need more than the default 1024 descriptors.
ulimit -n 65536 2>/dev/null || true
exec target/release/gongwen-bench --bin target/release "$@"
