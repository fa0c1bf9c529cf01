#!/usr/bin/env bash
# Writes throwaway keys and configs for the "through a device" row (bench/anchor-hooks.sh):
# a server, a device agent exposing the tcpbench sink as service "sink", and a user client with a
# local forward to "bench-dev:sink" (end to end: the server relays ciphertext). Loopback only.
set -euo pipefail
WORK=$1 SINK_PORT=$2 SERVER_PORT=$3 CLIENT_PORT=$4
BIN=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bin/twoway
mkdir -p "$WORK"; cd "$WORK"
umask 077
for k in server user device; do node "$BIN" keygen > $k.key; done
SERVER_PUB=$(node "$BIN" pubkey < server.key)
USER_PUB=$(node "$BIN" pubkey < user.key)
DEVICE_PUB=$(node "$BIN" pubkey < device.key)
LIMITS='[limits]
max_streams_per_session = 20000
stream_open_rate = 100000
stream_open_burst = 100000'
cat > peers.toml <<TOML
[[peer]]
name = "bench"
public_key = "$USER_PUB"
allow = []
devices = ["bench-dev:sink"]

[[peer]]
name = "bench-dev"
public_key = "$DEVICE_PUB"
allow = []
kind = "device"
TOML
cat > server.toml <<TOML
[server]
listen = "127.0.0.1:$SERVER_PORT"
private_key_file = "server.key"
peers_file = "peers.toml"
control_socket = "server.sock"
$LIMITS
dials_in_flight = 1024
handshake_rate_per_ip = 1000
handshake_burst_per_ip = 1000
max_unauthenticated_per_ip = 256
TOML
cat > device.toml <<TOML
[client]
server_url = "ws://127.0.0.1:$SERVER_PORT/twoway"
server_public_key = "$SERVER_PUB"
private_key_file = "device.key"
control_socket = "device.sock"
[[service]]
name = "sink"
target = "127.0.0.1:$SINK_PORT"
allow = ["bench"]
$LIMITS
TOML
cat > user.toml <<TOML
[client]
server_url = "ws://127.0.0.1:$SERVER_PORT/twoway"
server_public_key = "$SERVER_PUB"
private_key_file = "user.key"
control_socket = "user.sock"
[[device]]
name = "bench-dev"
public_key = "$DEVICE_PUB"
[[forward]]
listen = "127.0.0.1:$CLIENT_PORT"
target = "bench-dev:sink"
$LIMITS
TOML
