#!/usr/bin/env bash
# Writes throwaway keys and configs for the tunnel under test into WORK (used by bench/run.mjs
# through ../shared/bench/anchors.sh). Limits are raised so that the load generator, not a
# flood guard, is what is measured; loopback only.
set -euo pipefail
WORK=$1 SINK_PORT=$2 SERVER_PORT=$3 CLIENT_PORT=$4
BIN=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bin/twoway
mkdir -p "$WORK"; cd "$WORK"
umask 077
node "$BIN" keygen > server.key
node "$BIN" keygen > client.key
SERVER_PUB=$(node "$BIN" pubkey < server.key)
CLIENT_PUB=$(node "$BIN" pubkey < client.key)
LIMITS='[limits]
max_streams_per_session = 20000
stream_open_rate = 100000
stream_open_burst = 100000
dials_in_flight = 1024'
cat > peers.toml <<TOML
[[peer]]
name = "bench"
public_key = "$CLIENT_PUB"
allow = ["127.0.0.1:$SINK_PORT"]
TOML
cat > server.toml <<TOML
[server]
listen = "127.0.0.1:$SERVER_PORT"
private_key_file = "server.key"
peers_file = "peers.toml"
control_socket = "server.sock"
$LIMITS
handshake_rate_per_ip = 1000
handshake_burst_per_ip = 1000
max_unauthenticated_per_ip = 256
TOML
cat > client.toml <<TOML
[client]
server_url = "ws://127.0.0.1:$SERVER_PORT/twoway"
server_public_key = "$SERVER_PUB"
private_key_file = "client.key"
control_socket = "client.sock"
[[forward]]
listen = "127.0.0.1:$CLIENT_PORT"
target = "127.0.0.1:$SINK_PORT"
$LIMITS
TOML
