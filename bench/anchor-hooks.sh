# Sourced by ../shared/bench/anchors.sh (TUT_HOOK_FILE): adds two rows beside the "tut" row (user
# client -> server -> sink). Needs TWOWAY_BIN, NODE_BIN and TWOWAY_BENCH_DIR (and DAEMON_NODE_FLAGS,
# bin/twoway's shebang flags), all set by bench/run.mjs.
#   node_relay:    two chained plain Node.js relays (bench/node-relay.mjs: stream.pipe, no crypto),
#                  the floor of any pair of Node.js daemons on this machine.
#   twoway_device: twoway through a device agent (user client -> server -> device agent -> sink,
#                  end to end encrypted).
anchor_node_relay() {
  ROW_LABEL=node-relay-2hop
  local p1 p2
  alloc_port; p1=$REPLY
  alloc_port; p2=$REPLY
  start_bg node-relay-2 "$NODE_BIN" "$TWOWAY_BENCH_DIR/node-relay.mjs" "$p2" "$SINK_PORT"; local b=$BG_PID
  start_bg node-relay-1 "$NODE_BIN" "$TWOWAY_BENCH_DIR/node-relay.mjs" "$p1" "$p2"; local a=$BG_PID
  wait_port "$p2" "$b" 20 && wait_port "$p1" "$a" 20 || { SKIP="node relays did not listen"; return 1; }
  RELAY_PIDS="$a $b"; TARGET_PORT=$p1
  NOTE="two chained Node.js relays, stream.pipe, no crypto (the floor of two Node daemons)"
}

anchor_twoway_device() {
  ROW_LABEL=twoway-via-device
  local sp cp d=$WORK/device
  alloc_port; sp=$REPLY
  alloc_port; cp=$REPLY
  timeout 60 bash "$TWOWAY_BENCH_DIR/device-setup.sh" "$d" "$SINK_PORT" "$sp" "$cp" >>"$WORK/device-setup.log" 2>&1 \
    || { SKIP="device-setup.sh failed (see $WORK/device-setup.log)"; return 1; }
  start_bg dev-server "$NODE_BIN" ${DAEMON_NODE_FLAGS:-} "$TWOWAY_BIN" server --config "$d/server.toml" --log-level warn; local spid=$BG_PID
  wait_port "$sp" "$spid" 20 || { SKIP="server did not listen: $(tail -c 300 "$WORK/dev-server.log")"; return 1; }
  start_bg dev-agent "$NODE_BIN" ${DAEMON_NODE_FLAGS:-} "$TWOWAY_BIN" client --config "$d/device.toml" --log-level warn; local apid=$BG_PID
  start_bg dev-user "$NODE_BIN" ${DAEMON_NODE_FLAGS:-} "$TWOWAY_BIN" client --config "$d/user.toml" --log-level warn; local upid=$BG_PID
  wait_port "$cp" "$upid" 20 || { SKIP="user client did not listen: $(tail -c 300 "$WORK/dev-user.log")"; return 1; }
  # The device announces its service right after its session opens; wait for it (bounded).
  local i
  for i in $(seq 1 100); do
    "$NODE_BIN" "$TWOWAY_BIN" status --json --socket "$d/server.sock" 2>/dev/null | grep -q '"sink"' && break
    sleep 0.1
  done
  RELAY_PIDS="$spid $apid $upid"; TARGET_PORT=$cp
  NOTE="user client + server + device agent; inner Noise IK end to end"
}
