/**
 * Two connected MessageChannels over each transport the layers above run on, so that one suite
 * runs over all of them (as yamux runs its tests over pipe, TCP and TLS): the in-memory pair of
 * src/channel.ts, and a real WebSocket on loopback through src/transport (listen + dial, the
 * WebSocketChannel the daemons use), without the secure session in between.
 */
import { createChannelPair, type MessageChannel } from '../../src/channel.js';
import { MAX_RECORD_BYTES } from '../../src/session/wire.js';
import type { WebSocketChannel } from '../../src/transport/websocket-channel.js';
import { dialTransport } from '../../src/transport/ws-dial.js';
import { listenTransport } from '../../src/transport/ws-listen.js';

export interface ChannelPair {
  /** [client end, server end] */
  readonly channels: [MessageChannel, MessageChannel];
  /** Tears the transport down: for the WebSocket, the TCP connection dies without a close frame. */
  stop(): Promise<void>;
}

export type ChannelPairFactory = () => Promise<ChannelPair>;

export const memoryPair: ChannelPairFactory = async () => {
  const channels = createChannelPair();
  return {
    channels,
    stop: async () => {
      for (const c of channels) c.close({ code: 'transport-closed' });
    },
  };
};

const SUBPROTOCOL = 'twoway-test';

export const websocketPair: ChannelPairFactory = async () => {
  let accepted!: (channel: WebSocketChannel) => void;
  const serverEnd = new Promise<WebSocketChannel>((resolve) => (accepted = resolve));
  const server = await listenTransport({
    host: '127.0.0.1',
    port: 0,
    path: '/test',
    subprotocol: SUBPROTOCOL,
    maxPayloadBytes: MAX_RECORD_BYTES,
    onConnection: () => true,
    onConnectionClosed: () => {},
    onUpgrade: () => ({ kind: 'accept', responseHeaders: {}, onOpen: accepted }),
  });
  const client = await dialTransport({
    url: `ws://127.0.0.1:${server.address().port}/test`,
    subprotocol: SUBPROTOCOL,
    headers: {},
    maxPayloadBytes: MAX_RECORD_BYTES,
    timeoutMs: 5_000,
    onUpgradeResponse: () => {},
  });
  return { channels: [client, await serverEnd], stop: () => server.close() };
};

/** For `describe.each(TRANSPORTS)('... over %s', (name, pair) => ...)`. */
export const TRANSPORTS: ReadonlyArray<readonly [string, ChannelPairFactory]> = [
  ['the in-memory pair', memoryPair],
  ['a loopback WebSocket', websocketPair],
];
