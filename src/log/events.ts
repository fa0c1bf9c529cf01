/**
 * Stable event names for the audit log: the one list. The README's "Logs" section lists exactly
 * these (a test compares them). Operators alert and grep on these; renaming one is a breaking
 * change. Log calls look like
 * `log.info({ event: EVENTS.streamOpen, peer, target }, 'stream opened')`.
 */
export const EVENTS = Object.freeze({
  daemonStart: 'daemon.start',
  daemonReady: 'daemon.ready',
  daemonStop: 'daemon.stop',
  listen: 'listen',
  localRefused: 'local.refused',
  transportListening: 'transport.listening',
  authAccepted: 'auth.accepted',
  authRefused: 'auth.refused',
  sessionOpen: 'session.open',
  sessionClosed: 'session.closed',
  sessionRekey: 'session.rekey',
  muxClosed: 'mux.closed',
  muxFailed: 'mux.failed',
  connectAttempt: 'connect.attempt',
  connectFailed: 'connect.failed',
  reconnectScheduled: 'reconnect.scheduled',
  streamOpen: 'stream.open',
  streamRefused: 'stream.refused',
  streamClose: 'stream.close',
  streamReset: 'stream.reset',
  deviceOnline: 'device.online',
  deviceOffline: 'device.offline',
  deviceServices: 'device.services',
  deviceStreamOpen: 'device.stream.open',
  deviceStreamRefused: 'device.stream.refused',
  deviceStreamClose: 'device.stream.close',
  reverseListen: 'reverse.listen',
  reverseRelease: 'reverse.release',
  refusalsSuppressed: 'refusals.suppressed',
  reload: 'config.reload',
  reloadFailed: 'config.reload_failed',
  peersChanged: 'peers.changed',
  // Enrollment by invitation (src/enroll/).
  inviteCreated: 'invite.created',
  inviteRevoked: 'invite.revoked',
  joinAccepted: 'join.accepted',
  joinRefused: 'join.refused',
  peerApproved: 'peer.approved',
  controlRequest: 'control.request',
  controlError: 'control.error',
  controlFailed: 'control.failed',
  verifyAccepted: 'verify.accepted',
  verifyRefused: 'verify.refused',
  verifyLocked: 'verify.locked',
  verifyRevoked: 'verify.revoked',
  logDropped: 'log.dropped',
  internalError: 'internal.error',
} as const);

export type EventName = (typeof EVENTS)[keyof typeof EVENTS];
