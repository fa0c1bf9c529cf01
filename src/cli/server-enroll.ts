/**
 * Enrollment inside `twoway server`: the join service (its files from the server config), the
 * TOTP hook of `--verify totp` invitations, the audit lines of invitations the CLI created or
 * revoked (control command `invites`), and `peer.approved` when a reload admits a pending peer.
 */
import type { Logger } from 'pino';
import type { ServerConfig } from '../config/server-config.js';
import { JoinService } from '../enroll/join-server.js';
import { listInvites } from '../enroll/invites-store.js';
import { EVENTS } from '../log/events.js';
import type { ServerPeers } from '../policy/peer-table.js';
import { enrolTotp } from '../verify/totp-secrets.js';

export interface ServerEnrollment {
  /** Undefined under require_psk: a joined peer has no psk file, so every join is refused. */
  readonly join: JoinService | undefined;
  /** Control command `invites` ({"cmd":"invites","id"}): logs invite.created or invite.revoked for it. */
  control(request: { readonly [key: string]: unknown }): { ok: boolean; error?: string };
  /** After a reload: `peer.approved` for each peer no longer pending. */
  reloaded(before: ServerPeers, after: ServerPeers): void;
}

export function serverEnrollment(config: ServerConfig, logger: Logger, reload: (trigger: string) => void): ServerEnrollment {
  const join = new JoinService({
    invitesFile: config.invitesFile,
    peersFile: config.peersFile,
    logger,
    enrolTotp: (peerName) => enrolTotp(config.verify.totpFile, peerName, config.verify.totpIssuer).uri,
    reload,
  });
  return {
    join: config.requirePsk ? undefined : join,
    control(request) {
      const id = request.id;
      if (typeof id !== 'string' || id.length > 64) return { ok: false, error: 'invites: expected "id"' };
      const record = listInvites(config.invitesFile).find((r) => r.id === id);
      if (record === undefined) return { ok: false, error: 'invites: no such invitation' };
      const fields = {
        invite: record.id,
        peer: record.name,
        expiresAt: record.expiresAt,
        approval: record.approval,
        ...(record.verify ? { verify: record.verify } : {}),
      };
      if (record.state === 'revoked') logger.info({ event: EVENTS.inviteRevoked, ...fields }, `invitation for ${record.name} revoked`);
      else logger.info({ event: EVENTS.inviteCreated, ...fields, allow: record.allow, devices: record.devices }, `invitation for ${record.name} created`);
      return { ok: true };
    },
    reloaded(before, after) {
      const now = after.pendingNames();
      for (const name of before.pendingNames()) {
        if (!now.has(name) && after.names().includes(name)) logger.info({ event: EVENTS.peerApproved, peer: name }, `${name} approved`);
      }
    },
  };
}
