/**
 * Which device services a peer may reach (peers.toml `devices = ["build1:ssh", "build1:*"]`).
 * Default deny; `*` matches any device name or any service name, nothing else is a pattern.
 */

/** A compiled `devices` list. */
export class DeviceRules {
  readonly #rules: ReadonlyArray<{ readonly device: string; readonly service: string }>;

  /** `entries` were validated by the config reader (`DEVICE:SERVICE`, either part may be `*`). */
  constructor(entries: readonly string[]) {
    this.#rules = entries.map((e) => {
      const colon = e.indexOf(':');
      return { device: e.slice(0, colon), service: e.slice(colon + 1) };
    });
  }

  get size(): number {
    return this.#rules.length;
  }

  /** True when some rule covers `device`'s `service`. */
  allows(device: string, service: string): boolean {
    return this.#rules.some((r) => (r.device === '*' || r.device === device) && (r.service === '*' || r.service === service));
  }
}
