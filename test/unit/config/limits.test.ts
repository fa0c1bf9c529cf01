/**
 * Config's `[limits]` and the layers that enforce them must agree: an unset key means exactly the
 * layer's own default, and every value config accepts is one the layer accepts too (else a
 * daemon that passed check-config would fail at its first session).
 */
import { describe, expect, it } from 'vitest';
import { OPEN_QUEUE_WAIT_MS } from '../../../src/mux/mux-limits.js';
import { TableReader } from '../../../src/config/fields.js';
import { LIMIT_SPECS, readClientLimits, readServerLimits, type ClientLimits, type Role, type ServerLimits } from '../../../src/config/limits.js';
import { muxLimitsFrom, sessionLimitsFrom } from '../../../src/config/limits-map.js';
import { DialLimiter } from '../../../src/forward/dial-limiter.js';
import { DIAL_TIMEOUT_MS } from '../../../src/forward/dial-target.js';
import { DEFAULT_MUX_LIMITS, resolveMuxLimits } from '../../../src/mux/mux-limits.js';
import { DEFAULT_SESSION_LIMITS, resolveSessionLimits } from '../../../src/session/session-limits.js';

const read = (role: Role, table?: Record<string, number>): ServerLimits | ClientLimits => {
  const reader = table === undefined ? undefined : new TableReader('test.toml', '[limits]', table);
  return role === 'server' ? readServerLimits(reader) : readClientLimits(reader);
};

describe("[limits] defaults are the layers' defaults", () => {
  it.each<Role>(['server', 'client'])('%s: an absent [limits] gives every layer exactly its defaults', (role) => {
    const limits = read(role);
    const session = resolveSessionLimits(sessionLimitsFrom(limits));
    const mux = resolveMuxLimits(muxLimitsFrom(limits));
    if (role === 'server') {
      expect(session).toEqual(DEFAULT_SESSION_LIMITS);
    } else {
      // A client sets no admission limits; what it does set must be the session's defaults.
      for (const [key, value] of Object.entries(sessionLimitsFrom(limits)))
        expect(value, key).toBe(DEFAULT_SESSION_LIMITS[key as keyof typeof DEFAULT_SESSION_LIMITS]);
    }
    expect(mux).toEqual(DEFAULT_MUX_LIMITS);
    expect(limits.dialsInFlight).toBe(new DialLimiter().maxInFlight);
    expect(limits.dialTimeoutMs).toBe(DIAL_TIMEOUT_MS);
    if (role === 'client') expect((limits as ClientLimits).openQueueWaitMs).toBe(OPEN_QUEUE_WAIT_MS);
    else expect((limits as ServerLimits).maxStreamsPerKey).toBe(DEFAULT_MUX_LIMITS.maxStreams);
  });

  it('each spec default is what an empty [limits] table reads', () => {
    for (const role of ['server', 'client'] as const) {
      const limits = read(role, {}) as unknown as Record<string, number>;
      for (const spec of LIMIT_SPECS.filter((s) => s.roles.includes(role))) expect(limits[spec.field], spec.key).toBe(spec.fallback);
    }
  });
});

describe("[limits] bounds are within the layers' bounds", () => {
  const cases = LIMIT_SPECS.flatMap((spec) => spec.roles.flatMap((role) => [spec.min, spec.max].map((value) => [spec.key, role, value] as const)));

  it.each(cases)('%s (%s) = %s: what config accepts, the layers accept', (key, role, value) => {
    let limits: ServerLimits | ClientLimits;
    try {
      limits = read(role, { [key]: value });
    } catch {
      return; // config refuses it by a relation to another key (dead_after_ms > keepalive_interval_ms): consistent
    }
    expect(() => resolveSessionLimits(sessionLimitsFrom(limits))).not.toThrow();
    expect(() => resolveMuxLimits(muxLimitsFrom(limits))).not.toThrow();
    expect(() => new DialLimiter({ maxInFlight: limits.dialsInFlight })).not.toThrow();
  });

  it('config refuses only the extremes its relations between keys forbid', () => {
    // Guards the early return above: these, and nothing else, are refused on their own.
    const refused = cases.filter(([key, role, value]) => {
      try {
        read(role, { [key]: value });
        return false;
      } catch {
        return true;
      }
    });
    expect(refused.map(([key, role, value]) => `${key} ${role} ${value}`).sort()).toEqual([
      'dead_after_ms client 200',
      'dead_after_ms server 200',
      'keepalive_interval_ms client 2147483647',
      'keepalive_interval_ms server 2147483647',
      'max_unauthenticated server 1',
      'max_unauthenticated_per_ip server 1000000',
    ]);
  });
});
