#!/usr/bin/env bash
# Run a local gongwen network: a CA, a hub and three agents on 127.0.0.1.
#
#   scripts/demo.sh              build, start everything, show the nodes, run until Ctrl-C
#   scripts/demo.sh --once       the same, then stop (used by CI to keep the demo working)
#   scripts/demo.sh --suite gm   the same network on the 国密 suite (SM2/SM3/SM4)
#
# Everything lives in ./demo/ (recreated on each run): ca/, certs, configs,
# data directories and one log per daemon.
set -euo pipefail

once=0
suite=standard
while [[ $# -gt 0 ]]; do
  case "$1" in
    --once) once=1 ;;
    --suite) suite="${2:?--suite takes standard or gm}"; shift ;;
    *) echo "usage: scripts/demo.sh [--once] [--suite standard|gm]" >&2; exit 2 ;;
  esac
  shift
done

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
certs init --name "gongwen demo CA" --suite "$suite"
echo "    crypto suite: $suite"
certs issue --role hub --id hub --ip 127.0.0.1 --out hub
# The units as a province enrolls them: one bundle each, with its console's
# HTTPS certificate for the address clerks open (here this machine).
cat > units.csv <<CSV
id,name,role,groups,console
prov-gov,黑龙江省人民政府,,,127.0.0.1
harbin-gov,哈尔滨市人民政府,,,127.0.0.1
daqing-gov,大庆市人民政府,,,127.0.0.1
hulan-gov,哈尔滨市呼兰区人民政府,,,127.0.0.1
prov-supervision,省政府督查室,supervisor,,127.0.0.1
CSV
# The bundles name the hub's address; the demo's hub takes a free port, so
# the agent.toml files below are the demo's own, with the bundles' files.
certs enroll --units units.csv --hub 127.0.0.1:7443 --out bundles
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
# Short deadlines so the demo shows urging (催办) and escalation (督办) live.
[deadlines]
normal       = "1h"
urgent       = "10s"
extra-urgent = "5s"
[[escalation]]
after  = "0s"
action = "urge"
[[escalation]]
after  = "10s"
action = "supervise"
notify = ["prov-supervision"]
[crypto]
suite = "$suite"
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

agents="prov-gov harbin-gov daqing-gov hulan-gov prov-supervision"
password="gongwen-demo-2026"
declare -A clerk=([prov-gov]=王五 [harbin-gov]=李四 [daqing-gov]=赵六 [hulan-gov]=钱七 [prov-supervision]=孙督查)
for id in $agents; do
  b="bundles/$id"
  enc=""
  [[ $suite == standard ]] && enc="encryption_key = \"$b/$id.enc.key\""
  cat > "$id.toml" <<TOML
node_id  = "$id"
hub      = "$addr"
hub_name = "hub"
root     = "$id-data"
[tls]
cert = "$b/$id.crt"
key  = "$b/$id.key"
ca   = "$b/ca.crt"
$enc
[console]
listen   = "127.0.0.1:0"
tls_cert = "$b/$id.console.crt"
tls_key  = "$b/$id.console.key"
TOML
  # The console's account (the password comes from standard input).
  echo "$password" | "$bin/gongwen-agent" user add clerk --display-name "${clerk[$id]}" \
    --role admin --config "$id.toml" >/dev/null
  echo "==> starting agent $id (log: demo/$id.log)"
  "$bin/gongwen-agent" run --config "$id.toml" 2>"$id.log" &
  pids+=($!)
done

# Each console listens on a port of its own, which its agent logs.
declare -A console
for id in $agents; do
  for _ in $(seq 100); do
    console[$id]=$(sed -n 's/.*console on \(https:[^ ]*\).*/\1/p' "$id.log" | head -n1)
    [[ -n "${console[$id]}" ]] && break
    sleep 0.1
  done
  [[ -n "${console[$id]}" ]] || { cat "$id.log"; echo "the console of $id did not start" >&2; exit 1; }
  if command -v curl >/dev/null 2>&1; then
    # HTTPS with the CA's certificate, as a clerk's PC that trusts ca.crt.
    code=$(curl -s --cacert ca/ca.crt -o /dev/null -w '%{http_code}' "${console[$id]}login")
    [[ "$code" == 200 ]] || { echo "the console of $id answered $code" >&2; exit 1; }
  fi
done
consoles() {
  echo "    open a console in your browser (user: clerk, password: $password; the"
  echo "    certificates come from demo/ca/ca.crt: trust it, or accept the warning):"
  for id in $agents; do
    printf '      %-18s %s   (%s)\n' "$id" "${console[$id]}" "${clerk[$id]}"
  done
}
echo
echo "==> the units' web consoles"
consoles

connected=0
for _ in $(seq 200); do
  connected=$("$bin/gongwen-hub" nodes --config hub.toml --json 2>/dev/null | grep -c '"can_receive": true' || true)
  [[ "$connected" -ge 5 ]] && break
  sleep 0.1
done
echo
"$bin/gongwen-hub" nodes --config hub.toml
if [[ "$connected" -lt 5 ]]; then
  echo "only $connected of 5 agents connected within 20 s; see demo/*.log" >&2
  exit 1
fi

echo
echo "==> prov-gov sends a notice with an attachment to the group 'cities'"
title="关于做好冬季安全生产工作的通知"
outbox="prov-gov-data/outbox/cities"
mkdir -p "$outbox/.$title"
printf '各市人民政府：\n\n为切实做好冬季安全生产工作，现将有关事项通知如下……\n\n黑龙江省人民政府\n2026年11月28日\n' \
  > "$outbox/.$title/正文.txt"
printf '单位,联系人,电话\n哈尔滨市,,\n大庆市,,\n' > "$outbox/.$title/附件1 安全检查汇总表.csv"
cat > "$outbox/$title.meta.toml" <<TOML
doc_number = "黑政发〔2026〕12号"
doc_type   = "通知"
urgency    = "urgent"
operator   = "张三"
phone      = "0451-12345678"
TOML
# A folder is filled under a hidden name and then moved in, so it is
# taken only when complete.
mv "$outbox/.$title" "$outbox/$title"
echo "    dropped $outbox/$title/ (正文.txt + 附件1 安全检查汇总表.csv)"

arrived=0
for _ in $(seq 200); do
  arrived=0
  for id in harbin-gov daqing-gov; do
    ls "$id-data/inbox/prov-gov/"*/正文.txt >/dev/null 2>&1 && arrived=$((arrived + 1))
  done
  [[ $arrived -ge 2 ]] && break
  sleep 0.1
done
if [[ $arrived -lt 2 ]]; then
  echo "the notice did not arrive within 20 s; see demo/*.log" >&2
  exit 1
fi
for id in harbin-gov daqing-gov; do
  echo "    $id received:"
  (cd "$id-data/inbox" && find . -type f | sort | sed 's/^/      /')
done
# The delivered receipts travel back to the sender.
for _ in $(seq 100); do
  [[ $("$bin/gongwen-agent" status --config prov-gov.toml --json | grep -c '"state": "delivered"') -ge 2 ]] && break
  sleep 0.1
done
echo
echo "==> gongwen-agent status (at prov-gov): signed receipts from each unit"
"$bin/gongwen-agent" status --config prov-gov.toml

doc=$(ls harbin-gov-data/inbox/prov-gov/)
echo
echo "==> harbin-gov signs for it (签收); daqing-gov does not"
"$bin/gongwen-agent" ack "$doc" --by "李四" --config harbin-gov.toml
for _ in $(seq 100); do
  "$bin/gongwen-agent" status --config prov-gov.toml --json | grep -q '"state": "acknowledged"' && break
  sleep 0.1
done
"$bin/gongwen-agent" status --config prov-gov.toml

echo
echo "==> the notice is urgent: 10 s to sign for it. Waiting for the hub to urge daqing-gov (催办)…"
urge=""
for _ in $(seq 400); do
  urge=$(ls daqing-gov-data/inbox/prov-gov/"$doc"/催办通知-*.txt 2>/dev/null | head -n1 || true)
  [[ -n "$urge" ]] && break
  sleep 0.1
done
[[ -n "$urge" ]] || { echo "no urging notice within 40 s; see demo/hub.log" >&2; exit 1; }
sed 's/^/    /' "$urge"
echo "==> …and 10 s later to escalate to the supervision office (督办)"
sup=""
for _ in $(seq 400); do
  sup=$(ls prov-supervision-data/inbox/督办/*.txt 2>/dev/null | head -n1 || true)
  [[ -n "$sup" ]] && break
  sleep 0.1
done
[[ -n "$sup" ]] || { echo "no supervision notice within 40 s; see demo/hub.log" >&2; exit 1; }
sed 's/^/    /' "$sup"

echo
echo "==> gongwen-hub status (who has and has not signed for it)"
"$bin/gongwen-hub" status "$doc" --config hub.toml
echo
echo "==> gongwen-agent supervise overdue (asked by the supervision office through its own agent)"
"$bin/gongwen-agent" supervise overdue --config prov-supervision.toml
echo
echo "==> gongwen-hub report"
"$bin/gongwen-hub" report --config hub.toml
echo
echo "==> evidence: signed statements that openssl alone can check"
"$bin/gongwen-agent" evidence "$doc" --out evidence --config prov-gov.toml >/dev/null
sh evidence/verify.sh | sed 's/^/    /'

echo
echo "==> 请示 → 批复: harbin-gov asks prov-gov for a decision; prov-gov approves"
req="关于申请冬季安全生产专项资金的请示"
printf '省人民政府：\n\n为做好冬季安全生产工作，申请专项资金二百万元。妥否，请批示。\n\n哈尔滨市人民政府\n' > "$req.txt"
"$bin/gongwen-agent" send "$req.txt" --to prov-gov --doc-type 请示 --signer 张市长 --reply decision --reply-by 5d \
  --config harbin-gov.toml | sed 's/^/    /'
qdoc=""
for _ in $(seq 200); do
  qdoc=$(ls prov-gov-data/inbox/harbin-gov/ 2>/dev/null | head -n1 || true)
  [[ -n "$qdoc" && -f "prov-gov-data/inbox/harbin-gov/$qdoc/metadata.json" ]] && break
  sleep 0.1
done
[[ -n "$qdoc" ]] || { echo "the 请示 did not arrive within 20 s; see demo/*.log" >&2; exit 1; }
echo "    prov-gov received it; its metadata.json says: $(grep -o '"reply": "[a-z]*"' "prov-gov-data/inbox/harbin-gov/$qdoc/metadata.json")"
"$bin/gongwen-agent" reply "$qdoc" --decision approved --note "同意拨付专项资金。" --by "王五" \
  --config prov-gov.toml | sed 's/^/    /'
answer=""
for _ in $(seq 200); do
  answer=$(grep -l '"in_reply_to"' harbin-gov-data/inbox/prov-gov/*/metadata.json 2>/dev/null | head -n1 || true)
  [[ -n "$answer" ]] && break
  sleep 0.1
done
[[ -n "$answer" ]] || { echo "the 批复 did not arrive within 20 s; see demo/*.log" >&2; exit 1; }
echo "    harbin-gov received the 批复: $(grep -o '"decision_text": "[^"]*"' "$answer")"
for _ in $(seq 100); do
  "$bin/gongwen-hub" status "$qdoc" --json --config hub.toml | grep -q '"reply_state": "answered"' && break
  sleep 0.1
done
"$bin/gongwen-hub" status "$qdoc" --json --config hub.toml | grep -E '"(reply|reply_state|decision)"' | sed 's/^ */    /'
echo "    harbin-gov collects the answers to its 请示 (汇总):"
"$bin/gongwen-agent" collect "$qdoc" --out harbin-gov-data/汇总 --config harbin-gov.toml | sed 's/^/    /'
sed 's/^/      /' harbin-gov-data/汇总/汇总表.csv

echo
echo "==> 转发: harbin-gov passes the province's notice on to its county, hulan-gov"
"$bin/gongwen-agent" forward "$doc" --to hulan-gov --note "请认真贯彻落实。" --by "李四" \
  --config harbin-gov.toml | sed 's/^/    /'
fwd=""
for _ in $(seq 200); do
  fwd=$(grep -l '"forwarded_from"' hulan-gov-data/inbox/harbin-gov/*/metadata.json 2>/dev/null | head -n1 || true)
  [[ -n "$fwd" ]] && break
  sleep 0.1
done
[[ -n "$fwd" ]] || { echo "the forwarded notice did not arrive within 20 s; see demo/*.log" >&2; exit 1; }
echo "    hulan-gov received it; its metadata.json names the first issuer (verified):"
grep -A3 '"forwarded_from"' "$fwd" | grep -E '"(sender|doc_id)"' | sed 's/^ */      /'
for _ in $(seq 100); do
  "$bin/gongwen-hub" status "$doc" --json --config hub.toml | grep -q '"forwarded"' && break
  sleep 0.1
done
echo "    the province's status of its notice shows the cascade:"
"$bin/gongwen-hub" status "$doc" --config hub.toml | sed 's/^/    /'

echo
echo "==> one more notice for harbin-gov, to sign for in the browser"
second="关于报送年度工作总结的通知"
mkdir -p prov-gov-data/outbox/harbin-gov
printf '各市人民政府：\n\n请于12月20日前报送2026年度工作总结。\n' > "prov-gov-data/outbox/harbin-gov/.$second.txt"
mv "prov-gov-data/outbox/harbin-gov/.$second.txt" "prov-gov-data/outbox/harbin-gov/$second.txt"
for _ in $(seq 200); do
  [[ $(ls harbin-gov-data/inbox/prov-gov/ | wc -l) -ge 3 ]] && break
  sleep 0.1
done
echo "    your turn: open ${console[harbin-gov]} , log in as clerk ($password),"
echo "    open 「$second」 under 待签收 and press 签收; then in another tab open"
echo "    ${console[prov-gov]}sent and watch its 签收情况 change."
echo
consoles
echo
echo "Everything runs in $demo. Try, in another terminal, from there:"
echo "  cp SOME_FILE prov-gov-data/outbox/harbin-gov/    # send a file from prov-gov to harbin-gov"
echo "  cp SOME_FILE harbin-gov-data/outbox/cities/      # send from harbin-gov to the group 'cities'"
echo "  $bin/gongwen-agent send SOME_FILE --to daqing-gov --config prov-gov.toml"
echo "  $bin/gongwen-agent status --config prov-gov.toml"
echo "  $bin/gongwen-hub nodes --config hub.toml"
echo "  $bin/gongwen-agent inbox --pending --config daqing-gov.toml"
echo "  $bin/gongwen-agent reject $doc --reason '文号有误' --config daqing-gov.toml"
echo "  $bin/gongwen-hub overdue --config hub.toml"
echo "  $bin/gongwen-hub audit verify --config hub.toml"
echo "  $bin/gongwen-certs --ca-dir ca revoke --id daqing-gov   # the hub cuts daqing-gov off"
echo "Received documents appear in <unit>-data/inbox/<sender>/<doc_id>/."
[[ $once == 1 ]] && exit 0
echo "Press Ctrl-C to stop."
wait
