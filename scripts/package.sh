#!/usr/bin/env bash
# Build the Debian packages gongwen-hub, gongwen-agent and gongwen-certs
# (release binaries, systemd units, example configs) into target/debian/.
#
#   scripts/package.sh            build them
#   scripts/package.sh --check    build them, then check what is inside:
#                                 files, unit hardening, systemd-analyze verify
#
# Needs cargo-deb (cargo install cargo-deb --version 3.8.0 --locked).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "cargo-deb is missing: cargo install cargo-deb --version 3.8.0 --locked" >&2
  exit 1
fi

echo "==> building (release)"
cargo build --release --locked --bins --quiet
out=target/debian
rm -rf "$out"
for p in gongwen-hub gongwen-agent gongwen-certs; do
  cargo deb --no-build --locked --strip -p "$p" --output "$out" --quiet
done
ls -l "$out"/*.deb

[[ "${1:-}" == "--check" ]] || exit 0
exec scripts/check-packages.sh "$out"
