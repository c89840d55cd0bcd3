#!/usr/bin/env bash
# Run a local gongwen network: a CA, a hub and three agents on 127.0.0.1.
#
#   scripts/demo.sh          build, start everything, show the nodes, run until Ctrl-C
#   scripts/demo.sh --once   the same, then stop (used by CI to keep the demo working)
#
# Everything lives in ./demo/ (recreated on each run): ca/, certs, configs,
# data directories and one log per daemon.
set -euo pipefail

once=0
[[ "${1:-}" == "--once" ]] && once=1

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "==> building (debug)"
cargo build --quiet --bins
bin="$root/target/debug"

demo="$root/demo"
rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"

certs() { "$bin/gongwen-certs" --ca-dir ca "$@" >/dev/null; }
echo "==> creating a CA and certificates in $demo"
certs init --name "gongwen demo CA"
certs issue --role hub --id hub --ip 127.0.0.1 --out hub
certs issue --role node --id prov-gov --name "黑龙江省人民政府" --out prov-gov
certs issue --role node --id harbin-gov --name "哈尔滨市人民政府" --out harbin-gov
certs issue --role node --id daqing-gov --name "大庆市人民政府" --out daqing-gov
"$bin/gongwen-certs" --ca-dir ca list

cat > hub.toml <<TOML
listen   = "127.0.0.1:0"
data_dir = "hub-data"
[tls]
cert = "hub/hub.crt"
key  = "hub/hub.key"
ca   = "ca/ca.crt"
crl  = "ca/crl.pem"
[groups]
cities = ["harbin-gov", "daqing-gov"]
TOML

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

echo "==> starting the hub (log: demo/hub.log)"
"$bin/gongwen-hub" serve --config hub.toml 2>hub.log &
pids+=($!)
addr=""
for _ in $(seq 100); do
  addr=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' hub.log | head -n1)
  [[ -n "$addr" ]] && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then cat hub.log; echo "the hub did not start" >&2; exit 1; fi
  sleep 0.1
done
[[ -n "$addr" ]] || { cat hub.log; echo "the hub did not report its address within 10 s" >&2; exit 1; }
echo "    hub listening on $addr"

for id in prov-gov harbin-gov daqing-gov; do
  cat > "$id.toml" <<TOML
node_id  = "$id"
hub      = "$addr"
hub_name = "hub"
root     = "$id-data"
[tls]
cert = "$id/$id.crt"
key  = "$id/$id.key"
ca   = "$id/ca.crt"
TOML
  echo "==> starting agent $id (log: demo/$id.log)"
  "$bin/gongwen-agent" run --config "$id.toml" 2>"$id.log" &
  pids+=($!)
done

connected=0
for _ in $(seq 200); do
  connected=$("$bin/gongwen-hub" nodes --config hub.toml --json 2>/dev/null | grep -c '"connected": true' || true)
  [[ "$connected" -ge 3 ]] && break
  sleep 0.1
done
echo
"$bin/gongwen-hub" nodes --config hub.toml
if [[ "$connected" -lt 3 ]]; then
  echo "only $connected of 3 agents connected within 20 s; see demo/*.log" >&2
  exit 1
fi
echo
echo "All three agents are connected. Try, in another terminal (from $demo):"
echo "  $bin/gongwen-hub nodes --config hub.toml --json"
echo "  $bin/gongwen-certs --ca-dir ca revoke --id daqing-gov   # the hub cuts daqing-gov off"
[[ $once == 1 ]] && exit 0
echo "Press Ctrl-C to stop."
wait
