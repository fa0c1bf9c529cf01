#!/usr/bin/env bash
# The system suite (not part of `npm test`; .ci/run runs it after the tests): the units under a real
# systemd. For each Debian suite (default: bookworm, Debian 12, systemd 252; trixie, Debian 13,
# systemd 257) it boots a minimal Debian in systemd-nspawn with only its own loopback
# (--private-network), with this machine's Node.js copied in (Debian 12's nodejs is too old), and
# runs test/system/inner.sh there: `npm install -g` of the packed twoway, the README's Quick start
# and systemd blocks as written, systemctl start/reload/stop of twoway-server, twoway-client@work
# and the employee's user unit, journalctl checks, systemd-analyze verify and security.
#
# Usage (as root): bash test/system/run.sh [SUITE...]
# The rootfs of each suite is built once with debootstrap (about a minute) and cached in
# $TWOWAY_TEST_CACHE (default /var/cache/twoway-test), keyed by suite and include list.
# A suite debootstrap cannot reach is reported as not reachable and does not fail the run, except
# bookworm, which must work. Exit status 0 only if every check in every container passed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$PWD
here=$repo/test/system

if [ "$(id -u)" -ne 0 ]; then echo "test/system/run.sh: must run as root (systemd-nspawn, debootstrap)" >&2; exit 2; fi
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(bookworm trixie)
INCLUDE=systemd,systemd-sysv,dbus,libpam-systemd,sudo
CACHE=${TWOWAY_TEST_CACHE:-/var/cache/twoway-test}
# Bounds: debootstrap of one suite, and one container from boot to power-off.
DEBOOTSTRAP_TIMEOUT_S=600
CONTAINER_TIMEOUT_S=420

need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "=== installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d /var/tmp/twoway-system.XXXXXX)
nspawn_pid=
cleanup() {
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
    wait "$nspawn_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# rootfs SUITE: prints the cached rootfs of SUITE, building it first if needed.
rootfs() {
  local suite=$1 key dir tmp
  key=$(printf 'minbase %s' "$INCLUDE" | sha256sum | cut -c1-12)
  dir=$CACHE/$suite-$key
  if [ -f "$dir/.complete" ]; then echo "$dir"; return 0; fi
  mkdir -p "$CACHE"
  tmp=$CACHE/.$suite-$key.$$
  rm -rf "$tmp"
  echo "=== debootstrap $suite (first run only; cached in $dir)" >&2
  local start=$SECONDS
  if ! timeout "$DEBOOTSTRAP_TIMEOUT_S" debootstrap --variant=minbase --include="$INCLUDE" "$suite" "$tmp" >"$work/debootstrap-$suite.log" 2>&1; then
    tail -n 5 "$work/debootstrap-$suite.log" >&2
    rm -rf "$tmp"
    return 1
  fi
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  touch "$tmp/.complete"
  mv "$tmp" "$dir"
  echo "=== debootstrap $suite took $((SECONDS - start)) s" >&2
  echo "$dir"
}

echo "=== building and packing twoway"
npx tsc -p tsconfig.json
npm pack --silent --ignore-scripts --pack-destination "$work" >/dev/null
tgz=$(ls "$work"/twoway-*.tgz)
# The containers have no network: fill an npm cache with the package's dependencies here (an
# install into a scratch prefix), so `npm install -g` in the container runs offline from it.
npm install -g --silent --no-audit --no-fund --prefix "$work/prime" --cache "$work/npm-cache" "$tgz" >/dev/null 2>&1 \
  || npm install -g --no-audit --no-fund --prefix "$work/prime" --cache "$work/npm-cache" "$tgz"
total_passed=0 total_failed=0 status=0
host_check() { # host_check DESCRIPTION COMMAND...
  local desc=$1; shift
  if "$@"; then echo "ok - $desc"; total_passed=$((total_passed + 1)); else echo "not ok - $desc"; total_failed=$((total_failed + 1)); status=1; fi
}
# The README's one-step install from a clone: a fresh clone of HEAD (no node_modules, no dist/)
# installed globally with --install-links into a scratch prefix. Its prepare script must build
# dist/ although npm leaves the devDependencies out of a global install ("tsc: not found").
echo "=== npm install -g --install-links of a fresh clone"
git clone --quiet "$repo" "$work/clone"
clone_install() {
  timeout 300 npm install -g --install-links --no-audit --no-fund --prefix "$work/clone-prefix" --cache "$work/npm-cache" "$work/clone" \
    >"$work/clone-install.log" 2>&1 || { tail -n 20 "$work/clone-install.log"; return 1; }
  [ -f "$work/clone-prefix/lib/node_modules/twoway/dist/cli/main.js" ] && [ ! -L "$work/clone-prefix/lib/node_modules/twoway" ] &&
    "$work/clone-prefix/bin/twoway" --version && "$work/clone-prefix/bin/twoway" keygen >/dev/null
}
host_check "npm install -g --install-links of a fresh clone (README: Install) gives a working twoway" clone_install

node_bin=$(readlink -f "$(command -v node)")
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")

for suite in "${suites[@]}"; do
  echo "=== Debian $suite"
  if ! base=$(rootfs "$suite"); then
    if [ "$suite" = bookworm ]; then
      echo "not ok - debootstrap $suite failed (see above)"; total_failed=$((total_failed + 1)); status=1
    else
      echo "# $suite: not reachable with debootstrap from here (see above); not tested"
    fi
    continue
  fi
  root=$work/root-$suite results=$work/results-$suite
  cp -a --reflink=auto "$base" "$root"
  mkdir -p "$results" "$root/twoway-test" "$root/usr/lib/node_modules"
  # This machine's Node.js and npm, where the container's npm will see its prefix as /usr.
  cp "$node_bin" "$root/usr/bin/node"
  cp -a "$npm_dir" "$root/usr/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"
  # sudo looks the host name up: give the container's name an address in /etc/hosts.
  echo twoway-test >"$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 twoway-test\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  cp "$tgz" "$here/inner.sh" "$here/readme-block.mjs" "$root/twoway-test/"
  cp -a "$work/npm-cache" "$root/twoway-test/npm-cache"
  cat >"$root/etc/systemd/system/twoway-system-test.service" <<'EOF'
[Unit]
Description=twoway system test driver
After=systemd-user-sessions.service dbus.service
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
ExecStart=/bin/bash /twoway-test/inner.sh
TimeoutStartSec=400
[Install]
WantedBy=multi-user.target
EOF
  ln -sf /etc/systemd/system/twoway-system-test.service "$root/etc/systemd/system/multi-user.target.wants/twoway-system-test.service"
  start=$SECONDS
  timeout --kill-after=15 "$CONTAINER_TIMEOUT_S" systemd-nspawn --quiet -D "$root" --boot --console=pipe --register=no \
    --keep-unit --private-network --bind="$results:/twoway-results" </dev/null >"$results/console" 2>&1 &
  nspawn_pid=$!
  wait "$nspawn_pid" || echo "# systemd-nspawn exited with status $?"
  nspawn_pid=
  echo "# $suite: container ran for $((SECONDS - start)) s"
  if [ -f "$results/result" ]; then cat "$results/result"; fi
  if [ ! -f "$results/done" ]; then
    echo "not ok - the $suite container did not finish the test (timeout or crash); last lines of its log:"
    tail -n 60 "$results/log" 2>/dev/null || tail -n 60 "$results/console"
    total_failed=$((total_failed + 1)); status=1
  fi
  p=$(grep -c '^ok - ' "$results/result" 2>/dev/null || true)
  f=$(grep -c '^not ok - ' "$results/result" 2>/dev/null || true)
  total_passed=$((total_passed + p)); total_failed=$((total_failed + f))
  if [ "$f" -gt 0 ]; then
    status=1
    echo "=== $suite: $f checks failed; the container's log:"
    cat "$results/log"
  fi
  [ -n "${TWOWAY_SYSTEM_LOGS:-}" ] && mkdir -p "$TWOWAY_SYSTEM_LOGS" && cp -a "$results" "$TWOWAY_SYSTEM_LOGS/$suite"
  rm -rf "$root"
done
echo "system: $total_passed passed, $total_failed failed"
exit $status
