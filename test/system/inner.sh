#!/bin/bash
# Runs inside the booted container (as the oneshot unit twoway-system-test.service, started by
# run.sh): installs the packed twoway as a user would, runs the README's Quick start blocks, copies
# the units as the README's systemd section says, and drives systemctl start, reload and stop for
# twoway-server, twoway-client@work and the employee's user unit, reading journalctl.
# Writes TAP-like lines ("ok - ..." / "not ok - ...") to /twoway-results/result and the details to
# /twoway-results/log. Every wait is bounded; the container is powered off by the unit when done.
set -uo pipefail
T=/twoway-test
R=/twoway-results
exec >>"$R/log" 2>&1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export npm_config_offline=true npm_config_cache=$T/npm-cache npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
suite=$(. /etc/os-release; echo "$VERSION_CODENAME")
passed=0 failed=0

ok() { echo "ok - $*" >>"$R/result"; echo "=== [${SECONDS}s] ok - $*"; passed=$((passed + 1)); }
notok() { echo "not ok - $*" >>"$R/result"; echo "=== [${SECONDS}s] NOT OK - $*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...: one result line from a command's exit status
  local desc=$1; shift
  if "$@"; then ok "$desc"; else notok "$desc"; fi
}
note() { echo "# $*" >>"$R/result"; echo "=== # $*"; }
# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds or SECONDS have passed.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}
journal() { journalctl --no-pager -o cat "$@" 2>/dev/null; }
# count_events UNIT EVENT: how many JSON log lines of UNIT carry "event":"EVENT".
count_events() { journal -u "$1" | grep -c "\"event\":\"$2\"" || true; }
more_events() { [ "$(count_events "$1" "$2")" -gt "$3" ]; }
# reloaded_with UNIT N PEERS: the Nth config.reload line of UNIT reports PEERS peers.
reloaded_with() { journal -u "$1" | grep '"event":"config.reload"' | sed -n "$2p" | grep -q "\"peers\":$3[,}]"; }
# peer_event EVENT PEER: the server logged EVENT for the peer named PEER.
peer_event() { journal -u twoway-server | grep "\"event\":\"$1\"" | grep -q "\"peer\":\"$2\""; }
active() { [ "$(systemctl is-active "$1" 2>/dev/null)" = active ]; }
prop() { systemctl show -p "$2" --value "$1"; }
# README blocks, extracted by heading from the README of the installed package.
block() { node "$T/readme-block.mjs" "$pkg/README.md" "$@"; }

# run_block USER DIR NAME SCRIPT: runs one README block as written, with bash -e, as USER (root or
# a plain user, through runuser with a clean login environment) in DIR. A foreground daemon line
# ('twoway client ...' or 'twoway server ...') runs until it reports daemon.ready and is then
# stopped with SIGTERM (it would otherwise run for ever); that is the only change to the text.
run_block() {
  local user=$1 dir=$2 name=$3 script=$4 prelude rc
  prelude=$(cat <<'EOF'
set -eo pipefail
foreground() {
  local out; out=$(mktemp)
  "$@" >"$out" 2>&1 & local pid=$!
  local deadline=$((SECONDS + 20))
  until grep -q '"event":"daemon.ready"\|daemon.ready' "$out" || ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
  if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; local rc=$?; cat "$out" >&2; return "$rc"; fi
  grep -q 'daemon.ready' "$out" || { kill "$pid"; cat "$out" >&2; echo "foreground: no daemon.ready within 20 s: $*" >&2; return 1; }
  kill -TERM "$pid"; wait "$pid"; local rc=$?; cat "$out" >&2; return "$rc"
}
trap 'echo "README line failed (exit $?): $BASH_COMMAND" >&2' ERR
EOF
)
  script=$(printf '%s\n' "$script" | sed -E 's/^(twoway (client|server) )/foreground \1/')
  echo "--- README block '$name' as $user in $dir:"; printf '%s\n' "$script"; echo "---"
  if [ "$user" = root ]; then
    (cd "$dir" && timeout 120 bash -c "$prelude"$'\n'"$script") </dev/null
  else
    local uid; uid=$(id -u "$user")
    timeout 120 runuser -u "$user" -- env -i HOME="/home/$user" USER="$user" LOGNAME="$user" SHELL=/bin/bash \
      PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR="/run/user/$uid" \
      bash -c "cd \"$dir\" && $prelude"$'\n'"$script" </dev/null
  fi
  rc=$?
  echo "--- exit $rc"
  return $rc
}

echo "=== system test on Debian $suite, systemd $(systemctl --version | head -1)"
note "Debian $suite, $(systemctl --version | head -1), node $(node --version), npm $(npm --version)"

# 1. Install, as the README's Install section says: the packed tarball, globally.
tgz=$(ls "$T"/twoway-*.tgz)
check "npm install -g $(basename "$tgz") (as the README's Install section)" timeout 180 npm install -g "$tgz"
pkg=$(npm root -g)/twoway
check "twoway is on the PATH ($(command -v twoway || echo missing))" command -v twoway
check "twoway --version" twoway --version
install_block=$(block Install 0) || true
# Every path under the package folder that the README names exists after the install.
missing=$(grep -o '\$(npm root -g)/twoway/[A-Za-z0-9_./@-]*' "$pkg/README.md" | sed "s#\$(npm root -g)/twoway#$pkg#" | sort -u |
  while read -r p; do [ -e "$p" ] || echo "$p"; done)
check "every \$(npm root -g)/twoway/... path the README names exists${missing:+ (missing: $missing)}" test -z "$missing"

# 2. The employee's account: a plain user and her user manager, as a login would start it (linger,
# the README's advice, keeps it running here), so that her README steps have $XDG_RUNTIME_DIR.
useradd -m -s /bin/bash employee
emp_uid=$(id -u employee)
check "loginctl enable-linger employee" timeout 30 loginctl enable-linger employee
check "the employee's user manager (user@$emp_uid.service) is running" wait_for 30 active "user@$emp_uid.service"
active "user@$emp_uid.service" || { systemctl status --no-pager "user@$emp_uid.service"; journal -u "user@$emp_uid.service" -u "user-runtime-dir@$emp_uid.service" | tail -n 40; }

# The peers file the server config names (peers_file, relative to /etc/twoway).
peers_path() {
  local p; p=$(sed -n 's/^peers_file *= *"\(.*\)".*/\1/p' /etc/twoway/server.toml | head -n 1)
  case "$p" in /*) echo "$p" ;; "") echo /etc/twoway/peers.toml ;; *) echo "/etc/twoway/$p" ;; esac
}
# write_peers [NAME KEY]...: the client 'work' plus the peers given; an existing file keeps its
# owner and mode (cat > rewrites it in place).
write_peers() { local f; f=$(peers_path); mkdir -p "$(dirname "$f")"; peers_with "$@" > "$f"; }
peers_with() {
  printf '[[peer]]\nname = "work"\npublic_key = "%s"\nallow = ["127.0.0.1:9"]\n' "$work_pub"
  while [ $# -ge 2 ]; do printf '\n[[peer]]\nname = "%s"\npublic_key = "%s"\nallow = ["127.0.0.1:9"]\n' "$1" "$2"; shift 2; done
}

# set_up_units: after the administrator's first Quick start section. What the README's steps set up
# (or, if they failed, the same by hand, so the units are still tested); the edits the README leaves
# to the administrator (the client profile 'work' and its key, the allowlist); the units copied as
# the README's systemd section says; then start, reload and a session for both system units.
set_up_units() {
id twoway >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin twoway
[ -d /etc/twoway ] || install -d -m 0750 -o root -g twoway /etc/twoway
[ -s /etc/twoway/server.key ] || { (umask 077; twoway keygen > /etc/twoway/server.key) && chown twoway: /etc/twoway/server.key; }
[ -f /etc/twoway/server.toml ] || cp "$pkg/configs/server.toml" /etc/twoway/
server_pub=$(twoway pubkey < /etc/twoway/server.key)
(umask 077; twoway keygen > /etc/twoway/client-work.key) && chown twoway: /etc/twoway/client-work.key
work_pub=$(twoway pubkey < /etc/twoway/client-work.key)
cat > /etc/twoway/client-work.toml <<EOF
[client]
server_url = "ws://127.0.0.1:8443/twoway"
server_public_key = "$server_pub"
private_key_file = "/etc/twoway/client-work.key"
control_socket = "/run/twoway/client-work.sock"

[[forward]]
listen = "127.0.0.1:2222"
target = "127.0.0.1:9"
EOF
write_peers
check "check-config accepts the server config (as the service user)" runuser -u twoway -- twoway check-config /etc/twoway/server.toml

# The units, copied as the README's systemd section says (its first block), from the package folder.
if units=$(block systemd 0) && run_block root "$pkg" 'systemd (install the units)' "$units"; then
  ok "README systemd block 1: units copied, daemon-reload"
else
  notok "README systemd block 1 failed; copying the units by hand"
  cp "$pkg/systemd/twoway-server.service" "$pkg/systemd/twoway-client@.service" /etc/systemd/system/ && systemctl daemon-reload
fi
verify_out=$(cd /etc/systemd/system && systemd-analyze verify twoway-server.service twoway-client@work.service 2>&1)
check "systemd-analyze verify on the installed units${verify_out:+: $verify_out}" test -z "$verify_out"
for u in twoway-server.service twoway-client@work.service; do
  score=$(systemd-analyze security "$u" --offline=true 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  note "systemd-analyze security --offline=true $u: ${score:-?}"
  check "$u exposure ${score:-?} is 1.4 or better" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 1.4) }'
done

# The server: start, reload (a peer added, then removed), a client session, stop.
check "systemctl start twoway-server" timeout 60 systemctl start twoway-server
check "twoway-server is active" wait_for 10 active twoway-server
check "the server logged daemon.ready" wait_for 10 more_events twoway-server daemon.ready 0
probe_pub=$(twoway keygen | twoway pubkey)
reloads=$(count_events twoway-server config.reload)
write_peers probe "$probe_pub"
check "systemctl reload twoway-server (peer added)" timeout 30 systemctl reload twoway-server
check "config.reload logged with 2 peers" wait_for 15 reloaded_with twoway-server $((reloads + 1)) 2
write_peers
check "systemctl reload twoway-server (peer removed)" timeout 30 systemctl reload twoway-server
check "config.reload logged with 1 peer" wait_for 15 reloaded_with twoway-server $((reloads + 2)) 1

# An echo service as the target of the client's forward (127.0.0.1:9, which the peer may reach).
node -e "require('net').createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(9, '127.0.0.1')" &
echo_pid=$!
check "systemctl start twoway-client@work" timeout 60 systemctl start twoway-client@work
check "twoway-client@work is active" wait_for 10 active twoway-client@work
check "the server logged auth.accepted for the client (peer work)" wait_for 30 peer_event auth.accepted work
check "the server logged session.open for the client (peer work)" wait_for 10 peer_event session.open work
check "twoway status on the client's control socket says connected" \
  wait_for 15 sh -c 'twoway status --json -s /run/twoway/client-work.sock | grep -q "\"state\": \"connected\""'
twoway status -s /run/twoway/client-work.sock || true
# Bytes through the sandboxed units: the forward 127.0.0.1:2222 -> 127.0.0.1:9, from the service
# user (the local-listener owner check admits the daemon's own user).
echo_through() {
  timeout 20 setpriv --reuid=twoway --regid=twoway --init-groups node -e "
    const s = require('net').connect(2222, '127.0.0.1'); let got = '';
    s.on('connect', () => s.write('twoway-echo\\n'));
    s.on('data', (d) => { got += d; if (got.includes('twoway-echo')) { s.destroy(); process.exit(0); } });
    s.on('error', (e) => { console.error(e.message); process.exit(1); });
    s.on('close', () => process.exit(got.includes('twoway-echo') ? 0 : 1));"
}
check "bytes echo through the client unit's forward and the server unit" wait_for 15 echo_through
creloads=$(count_events twoway-client@work config.reload)
check "systemctl reload twoway-client@work" timeout 30 systemctl reload twoway-client@work
check "the client logged config.reload" wait_for 15 more_events twoway-client@work config.reload "$creloads"

}

# 3. The README's Quick start, section by section in its order, as written: the administrator's
# sections as root in the package folder (configs/ is there), the employee's as the plain user in
# her home. The files they hand each other (server.pub, the employee's public key: "*.pub") are
# carried between the two folders after each section, as the README's "give"/"send" says. After
# the administrator's first section the harness starts the units (set_up_units), since the later
# sections expect a running server.
units_up=0
admin_dir=$pkg emp_dir=/home/employee
exchange() {
  local f
  for f in "$admin_dir"/*.pub; do [ -f "$f" ] && [ ! -e "$emp_dir/$(basename "$f")" ] && install -m 0644 -o employee -g employee "$f" "$emp_dir/"; done
  for f in "$emp_dir"/*.pub; do [ -f "$f" ] && [ ! -e "$admin_dir/$(basename "$f")" ] && install -m 0644 "$f" "$admin_dir/"; done
  return 0
}
while IFS= read -r section; do
  case "$section" in
    'The administrator'*) who=root dir=$admin_dir ;;
    'The employee'*) who=employee dir=$emp_dir ;;
    *) note "README Quick start section '$section' is not run here"; continue ;;
  esac
  if script=$(block "$section") && run_block "$who" "$dir" "$section" "$script"; then
    ok "README Quick start '$section' as written (as $who)"
  else
    notok "README Quick start '$section' as written (as $who) failed: see the log"
  fi
  exchange
  if [ "$units_up" = 0 ] && [ "$who" = root ]; then set_up_units </dev/null; units_up=1; fi
done < <(node "$T/readme-block.mjs" "$pkg/README.md" --sections 'Quick start')
[ "$units_up" = 1 ] || { notok "the README's Quick start has no administrator section"; set_up_units; }
write_peers; check "systemctl reload twoway-server (the allowlist after the Quick start)" timeout 30 systemctl reload twoway-server

# 4. The employee's user unit, with her config from the Quick start.
# Point her config at this server and put her key on the allowlist (what the admin does with it).
cfg=/home/employee/.config/twoway/client.toml
emp_cfg_ok=0
emp_sock=/run/user/$emp_uid/twoway/client.sock   # the control_socket default under $XDG_RUNTIME_DIR
if [ -s /home/employee/.config/twoway/client.key ] && [ -f "$cfg" ]; then
  sed -i -E "s#^server_url *=.*#server_url = \"ws://127.0.0.1:8443/twoway\"#; s#^server_public_key *=.*#server_public_key = \"$server_pub\"#" "$cfg"
  if runuser -u employee -- env XDG_RUNTIME_DIR="/run/user/$emp_uid" twoway check-config "$cfg"; then emp_cfg_ok=1; fi
fi
check "the employee's client.toml from the README's steps passes check-config as the employee" test "$emp_cfg_ok" = 1
if [ "$emp_cfg_ok" != 1 ]; then
  note "writing the employee's ~/.config/twoway/client.toml and client.key by hand, to test the user unit"
  rm -rf /home/employee/.config/twoway
  emp_sock=/run/user/$emp_uid/twoway-client.sock
  timeout 60 runuser -u employee -- bash -c "mkdir -p ~/.config/twoway && cd ~/.config/twoway && (umask 077; twoway keygen > client.key) &&
    printf '[client]\nserver_url = \"ws://127.0.0.1:8443/twoway\"\nserver_public_key = \"$server_pub\"\nprivate_key_file = \"client.key\"\ncontrol_socket = \"$emp_sock\"\n' > client.toml"
fi
emp_pub=$(twoway pubkey < /home/employee/.config/twoway/client.key)
write_peers employee "$emp_pub"
check "systemctl reload twoway-server (the employee added)" timeout 30 systemctl reload twoway-server
if user_unit=$(block 'The employee: a user unit' 0) && run_block employee /home/employee 'The employee: a user unit' "$user_unit"; then
  ok "README systemd user unit block (as the employee)"
else
  notok "README systemd user unit block (as the employee) failed"
fi
uverify=$(runuser -u employee -- env XDG_RUNTIME_DIR="/run/user/$emp_uid" systemd-analyze --user verify /home/employee/.config/systemd/user/twoway-client.service 2>&1)
check "systemd-analyze --user verify on the installed user unit${uverify:+: $uverify}" test -z "$uverify"
uctl() { timeout 60 runuser -u employee -- env XDG_RUNTIME_DIR="/run/user/$emp_uid" systemctl --user "$@"; }
uactive() { [ "$(uctl is-active twoway-client 2>/dev/null)" = active ]; }
check "the user unit twoway-client is active" wait_for 15 uactive
check "the server accepted the employee's session (auth.accepted, peer employee)" wait_for 30 peer_event auth.accepted employee
check "twoway status as the employee (socket under \$XDG_RUNTIME_DIR) says connected" \
  wait_for 15 runuser -u employee -- sh -c "twoway status --json -s $emp_sock | grep -q '\"state\": \"connected\"'"
ureloads=$(journal _SYSTEMD_USER_UNIT=twoway-client.service | grep -c '"event":"config.reload"' || true)
check "systemctl --user reload twoway-client" uctl reload twoway-client
user_reloads() { [ "$(journal _SYSTEMD_USER_UNIT=twoway-client.service | grep -c '"event":"config.reload"')" -gt "$1" ]; }
check "the user unit logged config.reload" wait_for 15 user_reloads "$ureloads"
check "systemctl --user stop twoway-client" uctl stop twoway-client
check "user unit Result=success after stop ($(uctl show -p Result --value twoway-client))" test "$(uctl show -p Result --value twoway-client)" = success

# 4b. The README's "Enrolling an employee" blocks as written, under the real unit (the daemon writes
# /etc/twoway/peers through ReadWritePaths=): the administrator invites bob as root, bob joins from
# his own account with no root (the token file is handed over as the README says), the
# administrator approves, bob's client connects; then TOTP for bob: his streams are refused until
# `twoway login --code` through his daemon's control socket, and the daemon keeps the replay mark.
# The token carries configs/server.toml's public_url, ws://vpn.corp.example:8443/twoway: that
# name is this machine here, as a DNS entry would make it.
grep -q 'vpn.corp.example' /etc/hosts || echo '127.0.0.1 vpn.corp.example' >> /etc/hosts
useradd -m -s /bin/bash bob
bob_uid=$(id -u bob)
loginctl enable-linger bob >/dev/null 2>&1 || true
wait_for 30 active "user@$bob_uid.service" || true
peers_file=$(peers_path)
bob_sh() { timeout 60 runuser -u bob -- env -i HOME=/home/bob USER=bob LOGNAME=bob SHELL=/bin/bash \
  PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR="/run/user/$bob_uid" bash -c "cd ~ && $1"; }
if script=$(block 'Enrolling an employee' 0) && run_block root "$admin_dir" 'Enrolling an employee (invite)' "$script"; then
  ok "README 'Enrolling an employee' block 1 (twoway invite) as root"
else
  notok "README 'Enrolling an employee' block 1 (twoway invite) as root failed"
fi
[ -f "$admin_dir/bob.invite" ] && install -m 0600 -o bob -g bob "$admin_dir/bob.invite" /home/bob/
check "the server logged invite.created" wait_for 10 more_events twoway-server invite.created 0
if script=$(block 'Enrolling an employee' 1) && run_block bob /home/bob 'Enrolling an employee (join)' "$script"; then
  ok "README 'Enrolling an employee' block 2 (twoway join) as the plain user bob"
else
  notok "README 'Enrolling an employee' block 2 (twoway join) as the plain user bob failed"
fi
check "the join wrote bob's client.toml and a 0600 client.key" bob_sh 'test -f ~/.config/twoway/client.toml && test "$(stat -c %a ~/.config/twoway/client.key)" = 600'
check "the server logged join.accepted" wait_for 10 more_events twoway-server join.accepted 0
check "the daemon (as twoway, under ProtectSystem=strict) added bob to $peers_file" grep -q 'name = "bob"' "$peers_file"
check "$peers_file still belongs to twoway after the daemon rewrote it" test "$(stat -c %U "$peers_file")" = twoway
check "a second join with the same token is refused (exit 4) and writes nothing" bob_sh 'twoway join --dir ~/again - < bob.invite; rc=$?; test $rc = 4 && test ! -e ~/again/client.key'
if script=$(block 'Enrolling an employee' 2) && run_block root "$admin_dir" 'Enrolling an employee (approve)' "$script"; then
  ok "README 'Enrolling an employee' block 3 (invites list, peers approve) as root"
else
  notok "README 'Enrolling an employee' block 3 (invites list, peers approve) as root failed"
fi
check "the server logged peer.approved" wait_for 15 more_events twoway-server peer.approved 0
bob_sh 'nohup twoway client > client.log 2>&1 & echo $! > client.pid'
check "bob's client connects (twoway status)" wait_for 30 bob_sh 'twoway status --json | grep -q "\"state\": \"connected\""'
check "the server accepted bob's session" wait_for 15 peer_event auth.accepted bob
# TOTP for bob: the administrator requires it and enrols the secret; bob logs in with a code.
check "twoway peers set bob --verify totp (as root)" timeout 30 twoway peers set bob --verify totp -c /etc/twoway/server.toml
totp_uri=$(timeout 30 twoway peers totp bob -c /etc/twoway/server.toml 2>/dev/null | grep -o 'otpauth://[^ ]*' | head -n 1)
check "twoway peers totp bob printed an otpauth:// URI" test -n "$totp_uri"
check "the daemon can read the TOTP file root created beside the allowlist (owned by twoway, 0600)" \
  sh -c "f=\$(dirname '$peers_file')/totp.json; test \"\$(stat -c %U:%a \"\$f\")\" = twoway:600"
bob_status() { bob_sh 'twoway status --json' 2>/dev/null; }
totp_code() { node --input-type=module -e "import * as o from '$pkg/node_modules/otpauth/dist/otpauth.node.mjs'; console.log(o.URI.parse(process.argv[1]).generate())" "$totp_uri"; }
code=$(totp_code 2>/dev/null || true)
check "twoway login --code as bob (TOTP, through his daemon)" bob_sh "twoway login --code '$code'"
check "the server logged verify.accepted for bob" wait_for 10 peer_event verify.accepted bob
check "the daemon wrote the replay mark (last_step > 0 in totp.json)" sh -c "grep -q '\"last_step\": [1-9]' \"\$(dirname '$peers_file')/totp.json\""
bob_sh 'kill "$(cat client.pid)"' || true

# 5. Stop both system units: a clean stop, no restarts, no SIGSYS.
check "systemctl stop twoway-client@work" timeout 60 systemctl stop twoway-client@work
check "systemctl stop twoway-server" timeout 60 systemctl stop twoway-server
for u in twoway-client@work twoway-server; do
  check "$u Result=success after stop ($(prop "$u" Result))" test "$(prop "$u" Result)" = success
  check "$u was not restarted (NRestarts=$(prop "$u" NRestarts))" test "$(prop "$u" NRestarts)" = 0
done
sys=$( (journalctl --no-pager -o cat; journalctl --no-pager -o cat _SYSTEMD_USER_UNIT=twoway-client.service) | grep -E 'status=31/SYS|status=203/EXEC|code=killed' || true)
check "no unit was killed by the system call filter or failed to exec${sys:+: $sys}" test -z "$sys"

# 6. The README's systemd block 2 as written (enable --now, reload, journalctl), then stop again.
if usage=$(block systemd 1) && run_block root "$pkg" 'systemd (enable, reload, journal)' "$usage"; then
  ok "README systemd block 2 (enable --now, reload, journalctl) as root"
else
  notok "README systemd block 2 (enable --now, reload, journalctl) failed"
fi
systemctl stop twoway-client@work twoway-server || true
kill "$echo_pid" 2>/dev/null || true

echo "=== full journal of the twoway units:"
journalctl --no-pager -o short-monotonic -u twoway-server -u 'twoway-client@*' | tail -n 150
journalctl --no-pager -o short-monotonic _SYSTEMD_USER_UNIT=twoway-client.service | tail -n 50
echo "$passed passed, $failed failed" >>"$R/result"
echo "done" >"$R/done"
