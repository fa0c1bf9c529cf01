import { controlRequest } from '../control/control-client.js';
import type { ClientStatus } from '../client/client-daemon.js';
import type { ServerStatus } from '../server/server-daemon.js';
import { ConfigError } from '../errors.js';
import { escapeJsonText, escapeText } from '../log/escape.js';

/** `twoway status`: asks the running daemon over its control socket. */
export async function statusCommand(socketPath: string, json: boolean, stdout: NodeJS.WritableStream): Promise<void> {
  const reply = await controlRequest(socketPath, { cmd: 'status' });
  if (!reply.ok) throw new ConfigError('ERR_CONTROL', `control socket ${socketPath}: ${String(reply.error)}`);
  const status = reply.status as ServerStatus | ClientStatus;
  // Peer-chosen text (close reasons, last errors) is escaped before it reaches the terminal.
  stdout.write(json ? `${escapeJsonText(JSON.stringify(status, null, 2))}\n` : formatStatus(status));
}

function ago(iso: string | null): string {
  if (iso === null) return '-';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.floor(s / 60)} minutes, ${s % 60} seconds ago`;
  return `${Math.floor(s / 3600)} hours, ${Math.floor((s % 3600) / 60)} minutes ago`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(2)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(2)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** Text in the spirit of `wg show`. */
export function formatStatus(status: ServerStatus | ClientStatus): string {
  const lines: string[] = [];
  if (status.role === 'server') {
    lines.push(`server: ${status.listen ?? '(not listening)'}${status.path}`);
    lines.push(`  public key: ${status.fingerprint}`);
    lines.push(`  peers on allowlist: ${status.peers}`);
    lines.push(`  sessions: ${status.sessions.length}${status.draining ? ' (draining)' : ''}`);
    for (const s of status.sessions) {
      lines.push('', `peer: ${s.peer}`);
      lines.push(`  public key: ${s.fingerprint}`);
      lines.push(`  endpoint: ${s.remote}`);
      lines.push(`  state: ${s.state}, connected since ${s.since}`);
      lines.push(`  latest handshake: ${ago(s.lastHandshake)} (${s.rekeys} rekeys)`);
      lines.push(`  transfer: ${bytes(s.bytesIn)} received, ${bytes(s.bytesOut)} sent`);
      lines.push(`  open streams: ${s.streams}`);
      lines.push(`  dials: ${s.dialsInFlight} in flight, ${s.dialsQueued} queued`);
      if (s.verification) lines.push(`  verified: ${s.verification.identity} by ${s.verification.method}, until ${s.verification.expiresAt}`);
    }
    for (const d of status.devices ?? []) {
      lines.push('', `device: ${d.name}`);
      lines.push(`  public key: ${d.fingerprint}`);
      lines.push(`  connected since ${d.since}`);
      lines.push(`  services: ${d.services.length ? d.services.join(', ') : '(none announced)'}`);
      lines.push(`  relayed streams: ${d.streams}`);
      for (const r of d.reverse) lines.push(`  reverse listener: ${r.listen} -> ${r.service} (${r.up ? `listening, ${r.connections} connections` : 'down'})`);
    }
  } else {
    lines.push(`client: ${status.state}${status.server ? ` to ${status.server}` : ''}`);
    lines.push(`  public key: ${status.fingerprint}`);
    if (status.lastError) lines.push(`  last error: ${status.lastError}`);
    if (status.session) {
      const s = status.session;
      lines.push(`  server key: ${s.serverFingerprint}`);
      lines.push(`  endpoint: ${s.remote}, connected since ${status.since ?? '-'}`);
      lines.push(`  latest handshake: ${ago(s.lastHandshake)} (${s.rekeys} rekeys)`);
      lines.push(`  transfer: ${bytes(s.bytesIn)} received, ${bytes(s.bytesOut)} sent`);
      lines.push(`  open streams: ${s.streams}`);
    }
    if (status.verification) lines.push(`  verified: ${status.verification.identity} by ${status.verification.method}, until ${status.verification.expiresAt}`);
    for (const sv of status.services ?? []) {
      lines.push('', `service: ${sv.name} -> ${sv.target}`);
      lines.push(`  open streams: ${sv.streams}`);
    }
    for (const l of status.listeners) {
      lines.push('', `${l.kind}: ${l.listen}${l.target ? ` -> ${l.target}` : ''}`);
      lines.push(`  ${l.up ? 'listening' : 'down'}`);
    }
  }
  return `${lines.map(escapeText).join('\n')}\n`;
}
