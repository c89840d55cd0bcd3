#!/usr/bin/env bash
# Two gongwen deployments linked by federation, on 127.0.0.1, made with the
# README's "Federation" steps: heilongjiang (its CA, its hub, harbin-gov) and
# jilin (its own CA, hub and changchun-gov). The CAs are exchanged and each
# signs a federation statement for the other; jilin's hub dials
# heilongjiang's; a document crosses, is signed for, and its receipts and
# evidence come back.
#
#   scripts/federation-demo.sh          build, link, send, then run until Ctrl-C
#   scripts/federation-demo.sh --once   the same, then stop (CI runs it)
#
# Everything lives in ./demo-federation/ (recreated on each run): one folder
# per domain, each with ca/, hub/, bundles/, configs, data and logs. Beside
# Rust it needs openssl, as the README's steps do (fingerprints, verify.sh).
set -euo pipefail

once=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --once) once=1 ;;
    *) echo "usage: scripts/federation-demo.sh [--once]" >&2; exit 2 ;;
  esac
  shift
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "==> building (debug)"
cargo build --quiet --bins
bin="$root/target/debug"

demo="$root/demo-federation"
rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"

# Each hub listens on a port of its own, which it logs; the agents and
# jilin's dial are written with it once it is known.
declare -A addr
declare -A unit=([heilongjiang]=harbin-gov [jilin]=changchun-gov)
declare -A unit_name=([heilongjiang]=哈尔滨市人民政府 [jilin]=长春市人民政府)
declare -A ca_name=([heilongjiang]="黑龙江省电子公文交换 CA" [jilin]="吉林省电子公文交换 CA")
other() { [[ $1 == heilongjiang ]] && echo jilin || echo heilongjiang; }

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

for d in heilongjiang jilin; do
  echo "==> $d: a CA, the hub's certificate, and its unit ${unit[$d]} (enroll)"
  mkdir -p "$d"
  (
    cd "$d"
    certs() { "$bin/gongwen-certs" --ca-dir ca "$@" >/dev/null; }
    certs init --name "${ca_name[$d]}"
    certs issue --role hub --id hub --ip 127.0.0.1 --out hub
    printf 'id,name,role,groups\n%s,%s,,\n' "${unit[$d]}" "${unit_name[$d]}" > units.csv
    # The bundle's agent.toml names the hub's address; this demo writes its
    # own below, with the port the hub got.
    certs enroll --units units.csv --hub 127.0.0.1:7443 --out bundles
    tar xzf "bundles/${unit[$d]}.tar.gz"
  )
done

echo
echo "==> step 1: the administrators exchange CA certificates and compare fingerprints"
for d in heilongjiang jilin; do
  o=$(other "$d")
  cp "$o/ca/ca.crt" "$d/$o-ca.crt"
  echo "    $d received $o-ca.crt: $(openssl x509 -noout -fingerprint -sha256 -in "$d/$o-ca.crt")"
done

echo
echo "==> step 2: each CA signs a federation statement for the other domain"
for d in heilongjiang jilin; do
  o=$(other "$d")
  (cd "$d" && "$bin/gongwen-certs" --ca-dir ca federate --domain "$o" --peer-ca "$o-ca.crt" \
    --out "federation/$o.fed") | sed "s/^/    $d: /"
done

echo
echo "==> step 3: [federation] in each hub.toml (jilin dials heilongjiang), checked, and the hub started"
for d in heilongjiang jilin; do
  o=$(other "$d")
  dial=""
  [[ $d == jilin ]] && dial="addr      = [\"${addr[$o]}\"]"
  cat > "$d/hub.toml" <<TOML
listen   = "127.0.0.1:0"
data_dir = "hub-data"
[tls]
cert      = "hub/hub.crt"
key       = "hub/hub.key"
ca        = "ca/ca.crt"
crl       = "ca/crl.pem"
directory = "ca/directory.gwd"
[federation]
domain = "$d"
[[federation.peers]]
domain    = "$o"
statement = "federation/$o.fed"
$dial
TOML
  (cd "$d" && "$bin/gongwen-hub" check --config hub.toml) | sed "s/^/    $d: /"
  echo "==> starting $d's hub (log: demo-federation/$d/hub.log)"
  (cd "$d" && exec "$bin/gongwen-hub" serve --config hub.toml 2>hub.log) &
  pids+=($!)
  for _ in $(seq 100); do
    addr[$d]=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$d/hub.log" | head -n1)
    [[ -n "${addr[$d]}" ]] && break
    sleep 0.1
  done
  [[ -n "${addr[$d]}" ]] || { cat "$d/hub.log"; echo "$d's hub did not report its address within 10 s" >&2; exit 1; }
  echo "    $d's hub listens on ${addr[$d]}"
done

echo
echo "==> step 4: gongwen-hub peers (waiting for the link)"
for d in heilongjiang jilin; do
  linked=0
  for _ in $(seq 200); do
    (cd "$d" && "$bin/gongwen-hub" peers --config hub.toml --json 2>/dev/null) | grep -q '"connected": true' && { linked=1; break; }
    sleep 0.1
  done
  [[ $linked == 1 ]] || { cat "$d/hub.log"; echo "$d's hub did not link within 20 s" >&2; exit 1; }
  echo "    at $d:"
  (cd "$d" && "$bin/gongwen-hub" peers --config hub.toml) | sed 's/^/      /'
done

for d in heilongjiang jilin; do
  u=${unit[$d]}
  cat > "$d/$u.toml" <<TOML
node_id  = "$u"
hub      = "${addr[$d]}"
hub_name = "hub"
root     = "$u-data"
[tls]
cert = "$u/$u.crt"
key  = "$u/$u.key"
ca   = "$u/ca.crt"
encryption_key = "$u/$u.enc.key"
TOML
  echo "==> starting $d's agent $u (log: demo-federation/$d/$u.log)"
  (cd "$d" && exec "$bin/gongwen-agent" run --config "$u.toml" 2>"$u.log") &
  pids+=($!)
done

outbox="heilongjiang/harbin-gov-data/outbox"
for _ in $(seq 200); do
  [[ -d "$outbox/changchun-gov@jilin" ]] && break
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { tail -n 5 */*.log; echo "a daemon stopped; see demo-federation/*/*.log" >&2; exit 1; }
  done
  sleep 0.1
done
[[ -d "$outbox/changchun-gov@jilin" ]] || { echo "harbin-gov never listed changchun-gov@jilin; see demo-federation/*/*.log" >&2; exit 1; }
echo
echo "==> harbin-gov's address book lists the unit elsewhere (outbox/单位名录.txt):"
grep '@' "$outbox/单位名录.txt" | sed 's/^/    /'

echo
echo "==> harbin-gov drops a letter into outbox/changchun-gov@jilin/"
title="关于两省协作开展冬季安全生产检查的函"
printf '吉林省长春市人民政府：\n\n为做好冬季安全生产工作，拟开展两省联合检查……\n\n哈尔滨市人民政府\n' \
  > "$outbox/changchun-gov@jilin/.$title.txt"
mv "$outbox/changchun-gov@jilin/.$title.txt" "$outbox/changchun-gov@jilin/$title.txt"
inbox="jilin/changchun-gov-data/inbox/harbin-gov@heilongjiang"
doc=""
for _ in $(seq 200); do
  doc=$(ls "$inbox" 2>/dev/null | head -n1 || true)
  [[ -n "$doc" && -f "$inbox/$doc/metadata.json" ]] && break
  sleep 0.1
done
[[ -n "$doc" ]] || { echo "the letter did not arrive within 20 s; see demo-federation/*/*.log" >&2; exit 1; }
echo "    changchun-gov received it:"
(cd "$inbox" && find . -type f | sort | sed 's/^/      /')

echo
echo "==> changchun-gov signs for it (签收); the signed receipt crosses back"
(cd jilin && "$bin/gongwen-agent" ack "$doc" --by "李四" --config changchun-gov.toml) | sed 's/^/    /'
for _ in $(seq 200); do
  (cd heilongjiang && "$bin/gongwen-agent" status --config harbin-gov.toml --json) | grep -q '"state": "acknowledged"' && break
  sleep 0.1
done
(cd heilongjiang && "$bin/gongwen-agent" status --config harbin-gov.toml) | sed 's/^/    /'
echo
echo "==> gongwen-hub status at each hub"
for d in heilongjiang jilin; do
  echo "    at $d:"
  (cd "$d" && "$bin/gongwen-hub" status "$doc" --config hub.toml) | sed 's/^/      /'
done

echo
echo "==> evidence at the sender: openssl checks jilin's signatures back to heilongjiang's CA"
(cd heilongjiang && "$bin/gongwen-agent" evidence "$doc" --out evidence --config harbin-gov.toml >/dev/null \
  && sh evidence/verify.sh) | sed 's/^/    /'

echo
echo "Everything runs in $demo. Try, in another terminal, from there:"
echo "  cp SOME_FILE jilin/changchun-gov-data/outbox/harbin-gov@heilongjiang/   # and back the other way"
echo "  (cd heilongjiang && $bin/gongwen-hub peers --config hub.toml)"
echo "  (cd jilin && $bin/gongwen-certs --ca-dir ca revoke --id changchun-gov)  # jilin's list crosses; heilongjiang refuses its receipts"
[[ $once == 1 ]] && exit 0
echo "Press Ctrl-C to stop."
wait
