/**
 * Stable event names for the audit log. Operators alert and grep on these; renaming one is a
 * breaking change. Log calls look like
 * `log.info({ event: EVENTS.streamOpen, peer, target }, 'stream opened')`.
 */
export const EVENTS = Object.freeze({
  daemonStart: 'daemon.start',
  daemonReady: 'daemon.ready',
  daemonStop: 'daemon.stop',
  listen: 'listen',
  localRefused: 'local.refused',
  authAccepted: 'auth.accepted',
  authRefused: 'auth.refused',
  handshakeFailed: 'handshake.failed',
  rateLimited: 'rate.limited',
  sessionOpen: 'session.open',
  sessionClosed: 'session.closed',
  sessionRekey: 'session.rekey',
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
  reload: 'config.reload',
  reloadFailed: 'config.reload_failed',
  peersChanged: 'peers.changed',
  controlRequest: 'control.request',
  logDropped: 'log.dropped',
  internalError: 'internal.error',
} as const);

export type EventName = (typeof EVENTS)[keyof typeof EVENTS];
