# Sourced by ../shared/bench/anchors.sh (TUT_HOOK_FILE): adds the row "twoway_device", twoway
# through a device agent (user client -> server -> device agent -> sink, end to end encrypted),
# to be run beside the "tut" row (user client -> server -> sink). Needs TWOWAY_BIN and NODE_BIN
# (and DAEMON_NODE_FLAGS, bin/twoway's shebang flags, from bench/run.mjs).
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
