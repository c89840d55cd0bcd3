#!/usr/bin/env bash
# Check the .deb packages in DIR (default target/debian): the files each
# holds, the systemd units' type, watchdog, restart policy and hardening,
# `systemd-analyze verify` of the units against the packaged binaries, and
# — as root with CI=true or --install — a real install and removal: the
# gongwen user, the data folders and their owners, the binaries running.
set -euo pipefail
dir="${1:-target/debian}"
install=false
[[ "${2:-}" == "--install" || ( "${CI:-}" == "true" && $(id -u) == 0 ) ]] && install=true
fail() { echo "package check: $*" >&2; exit 1; }

deb() { ls "$dir"/"$1"_*.deb 2>/dev/null | head -1; }
for p in gongwen-hub gongwen-agent gongwen-certs; do
  [[ -n "$(deb $p)" ]] || fail "no $p package in $dir"
done

contains() { # package, path
  dpkg-deb --contents "$(deb "$1")" | awk '{print $NF}' | grep -qx "./$2" ||
    fail "$1 does not hold /$2:
$(dpkg-deb --contents "$(deb "$1")")"
}
echo "==> contents"
contains gongwen-hub usr/bin/gongwen-hub
contains gongwen-hub etc/gongwen/hub.toml.example
contains gongwen-hub usr/share/gongwen-hub/grafana/gongwen-hub.json
contains gongwen-agent usr/bin/gongwen-agent
contains gongwen-agent etc/gongwen/agent.toml.example
contains gongwen-certs usr/bin/gongwen-certs
unit_path() { dpkg-deb --contents "$(deb "$1")" | awk '{print $NF}' | grep -E "/systemd/system/$1\.service$" | sed 's|^\./||'; }
for p in gongwen-hub gongwen-agent; do
  [[ -n "$(unit_path $p)" ]] || fail "$p holds no $p.service"
  dpkg-deb --field "$(deb $p)" Depends | grep -q adduser || fail "$p does not depend on adduser"
  echo "$p: $(unit_path $p), Depends: $(dpkg-deb --field "$(deb $p)" Depends)"
  if [[ $p == gongwen-agent ]]; then
    dpkg-deb --field "$(deb $p)" Recommends | grep -q poppler-utils ||
      fail "gongwen-agent does not recommend poppler-utils (the console's PDF pages)"
  fi
done

echo "==> units"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
for p in gongwen-hub gongwen-agent; do
  dpkg-deb -x "$(deb $p)" "$root"
  unit="$root/$(unit_path $p)"
  for want in "Type=notify" "WatchdogSec=" "Restart=on-failure" "User=gongwen" \
              "NoNewPrivileges=yes" "ProtectSystem=strict" "ProtectHome=yes" \
              "PrivateTmp=yes" "ReadWritePaths=/var/lib/$p" "StateDirectory=$p" \
              "LimitNOFILE=" "MemoryMax=" "SystemCallFilter=@system-service" \
              "ProtectProc=invisible"; do
    grep -q "^$want" "$unit" || fail "$p.service lacks $want"
  done
done
if command -v systemd-analyze >/dev/null 2>&1; then
  # The unit as packaged, its ExecStart pointed at the unpacked binary.
  # Unknown keys and bad values are only warnings to systemd: any word
  # from it counts as a failure here.
  mkdir -p "$root/check"
  for p in gongwen-hub gongwen-agent; do
    sed "s|/usr/bin/$p|$root/usr/bin/$p|" "$root/$(unit_path $p)" >"$root/check/$p.service"
    said=$(systemd-analyze verify "$root/check/$p.service" 2>&1) ||
      fail "systemd-analyze verify refused $p.service: $said"
    [[ -z "$said" ]] || fail "systemd-analyze verify warns about $p.service: $said"
    echo "$p.service: systemd-analyze verify: ok"
  done
else
  echo "systemd-analyze is not installed here: unit verification skipped (apt install systemd)"
fi

$install || exit 0
echo "==> install and remove (root, CI)"
[[ $(id -u) == 0 ]] || fail "--install needs root"
# Nothing of a previous run, so the postinst really makes what it must.
dpkg -r gongwen-hub gongwen-agent gongwen-certs >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive dpkg -i "$(deb gongwen-certs)" "$(deb gongwen-hub)" "$(deb gongwen-agent)" >/dev/null
getent passwd gongwen >/dev/null || fail "the gongwen user was not made"
for d in /var/lib/gongwen-hub /var/lib/gongwen-agent; do
  [[ "$(stat -c %U:%G "$d")" == gongwen:gongwen ]] || fail "$d is owned by $(stat -c %U:%G "$d")"
done
[[ "$(stat -c %a /var/lib/gongwen-hub)" == 700 ]] || fail "/var/lib/gongwen-hub is $(stat -c %a /var/lib/gongwen-hub)"
[[ -f /etc/gongwen/hub.toml.example ]] || fail "no /etc/gongwen/hub.toml.example"
for b in gongwen-hub gongwen-agent gongwen-certs; do
  "/usr/bin/$b" --version >/dev/null || fail "/usr/bin/$b does not run"
done
# The example configuration loads: check finds only the missing
# certificates (it is not filled in), naming them.
out=$(/usr/bin/gongwen-hub check --config /etc/gongwen/hub.toml.example 2>&1 || true)
grep -q "/etc/gongwen/hub.crt" <<<"$out" || fail "gongwen-hub check on the example said: $out"
grep -q "is not valid\|unknown key\|cannot parse" <<<"$out" && fail "the example hub.toml does not load: $out"
dpkg -r gongwen-agent gongwen-hub gongwen-certs >/dev/null
[[ ! -e /usr/bin/gongwen-hub ]] || fail "/usr/bin/gongwen-hub is left after removal"
[[ -d /var/lib/gongwen-hub ]] || fail "removing the package removed the hub's data"
echo "installed, checked and removed: ok (data folders kept)"
