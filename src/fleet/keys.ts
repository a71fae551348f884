/**
 * A fleet's API keys in Redis (`pitcher keys add | list | revoke`), and each node's cached
 * copy of them.
 *
 * Redis: the hash `pitcher:keys` (name → the key's JSON: its SHA-256, never the key, and
 * its limits), the counter `pitcher:keys:version` (raised by every add and revoke, in the
 * same script) and the channel `pitcher:keys:events`, on which each change is announced
 * with its version (and, for a revocation, the name).
 *
 * A node applies an announced revocation as soon as it reads it (before any request that
 * arrives after it), and checks the version itself whenever its copy is older than a
 * second, so a lost announcement (a reconnect) costs at most that second. While Redis is
 * unreachable the node keeps its last copy. Once a fleet has had a key, keys are required
 * at every node even after the last one is revoked (the version stays above 0).
 */
import type { ApiKeySpec, KeyDirectory, Tenant } from "../api/auth.ts";
import type { LimiterFactory } from "../api/rateLimits.ts";
import { makeTenant } from "../api/auth.ts";
import { NODES_SET, nodeKey } from "./record.ts";
import { lua, type Redis, runScript, withTimeout } from "./redisScript.ts";

export const KEYS_HASH = "pitcher:keys";
export const KEYS_VERSION = "pitcher:keys:version";
export const KEYS_CHANNEL = "pitcher:keys:events";

/** A key as Redis holds it. */
export interface StoredKey extends Omit<ApiKeySpec, "key" | "keySha256"> {
  keySha256: string;
  createdMs: number;
}

// KEYS: hash, version. ARGV: name, JSON, channel. → the new version, or -1 when the name is taken.
const ADD = lua(`
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return -1 end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], cjson.encode({version = v}))
return v`);

// KEYS: hash, version. ARGV: name, channel. → the new version, or -1 when there is no such key.
const REVOKE = lua(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return -1 end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], cjson.encode({version = v, revoked = ARGV[1]}))
return v`);

/** Store a new key; false when one of that name exists. */
export async function addKey(client: Redis, key: StoredKey): Promise<boolean> {
  return Number(await runScript(client, ADD, [KEYS_HASH, KEYS_VERSION], [key.name, JSON.stringify(key), KEYS_CHANNEL])) > 0;
}

/** Remove a key and announce it; false when there was none of that name. */
export async function revokeKey(client: Redis, name: string): Promise<boolean> {
  return Number(await runScript(client, REVOKE, [KEYS_HASH, KEYS_VERSION], [name, KEYS_CHANNEL])) > 0;
}

function parseStored(text: string): StoredKey | null {
  try {
    const k = JSON.parse(text) as StoredKey;
    return typeof k.name === "string" && /^[0-9a-f]{64}$/.test(k.keySha256) ? { ...k, weight: k.weight ?? 1 } : null;
  } catch {
    return null;
  }
}

export async function listKeys(client: Redis): Promise<StoredKey[]> {
  const all = await client.hGetAll(KEYS_HASH);
  return Object.values(all)
    .map(parseStored)
    .filter((k): k is StoredKey => k !== null)
    .sort((a, b) => a.name.localeCompare(b.name));
}

export interface FleetKeysOptions {
  /** Names of the configuration's keys: they win over a Redis key of the same name. */
  configNames: ReadonlySet<string>;
  limiters: LimiterFactory;
  /** The live nodes, read with each check (rate limits' local shares). */
  onLiveNodes?: (n: number) => void;
  /** A copy older than this is checked against Redis before it is used (ms). */
  maxAgeMs: number;
  timeoutMs: number;
  log: (msg: string) => void;
}

export class FleetKeys implements KeyDirectory {
  private version = 0;
  private byName = new Map<string, { json: string; hash: string; tenant: Tenant }>();
  private hashes = new Map<string, Tenant>();
  private checkedAt = Number.NEGATIVE_INFINITY;
  private checking: Promise<void> | null = null;
  private reachable = true;
  /** Raised by every announcement: a check that overlapped one reads again. */
  private generation = 0;

  constructor(
    private readonly client: Redis,
    private readonly subscriber: Redis,
    private readonly opts: FleetKeysOptions,
  ) {}

  get required(): boolean {
    return this.version > 0;
  }

  byHash(sha256Hex: string): Tenant | undefined {
    return this.hashes.get(sha256Hex);
  }

  tenants(): Tenant[] {
    return [...this.hashes.values()];
  }

  /** Read the keys and listen for changes; fails when Redis cannot be read. */
  async start(): Promise<void> {
    await this.subscriber.subscribe(KEYS_CHANNEL, (message) => this.announced(message));
    // After a reconnect announcements may have been missed: check at the next request.
    this.subscriber.on("ready", () => {
      this.checkedAt = Number.NEGATIVE_INFINITY;
    });
    await this.check();
  }

  /** A revocation applies at once, before the reload its version asks for. */
  private announced(message: string): void {
    try {
      const m = JSON.parse(message) as { version: number; revoked?: string };
      if (m.revoked !== undefined) this.drop(m.revoked);
    } catch {
      // read again below
    }
    this.generation++;
    this.checkedAt = Number.NEGATIVE_INFINITY;
  }

  private drop(name: string): void {
    const e = this.byName.get(name);
    if (!e) return;
    this.byName.delete(name);
    this.hashes.delete(e.hash);
  }

  async refresh(): Promise<void> {
    if (performance.now() - this.checkedAt < this.opts.maxAgeMs) return;
    this.checking ??= this.check()
      .then(
        () => {
          if (!this.reachable) this.opts.log("fleet: keys: Redis reachable again");
          this.reachable = true;
        },
        (e: unknown) => {
          if (this.reachable) this.opts.log(`fleet: keys: cannot read Redis (${(e as Error).message}); using the keys read last`);
          this.reachable = false;
          // Not again before maxAgeMs: requests must not each wait for a dead Redis.
          this.checkedAt = performance.now();
        },
      )
      .finally(() => {
        this.checking = null;
      });
    await this.checking;
  }

  /** The version and the live nodes; the keys themselves only when the version moved. */
  private async check(): Promise<void> {
    for (;;) {
      const started = performance.now();
      const generation = this.generation;
      const [version, members] = await withTimeout(this.client.multi().get(KEYS_VERSION).sMembers(NODES_SET).exec(), this.opts.timeoutMs, "a key check");
      const ids = members as unknown as string[];
      if (ids.length > 0 && this.opts.onLiveNodes) this.opts.onLiveNodes(await withTimeout(this.client.exists(ids.map(nodeKey)), this.opts.timeoutMs, "a node count"));
      const v = Number(version ?? 0);
      if (v !== this.version) await this.load(v);
      // A change announced while we read may be missing from what we read (a revoked key put back): read again.
      if (generation === this.generation) {
        this.checkedAt = started;
        return;
      }
    }
  }

  private async load(version: number): Promise<void> {
    const all = await withTimeout(this.client.hGetAll(KEYS_HASH), this.opts.timeoutMs, "the keys");
    const byName = new Map<string, { json: string; hash: string; tenant: Tenant }>();
    for (const [name, json] of Object.entries(all)) {
      const k = parseStored(json);
      if (!k) continue;
      if (this.opts.configNames.has(name)) {
        this.opts.log(`fleet: keys: '${name}' is in Redis and in the configuration; the configuration's key is used`);
        continue;
      }
      // Unchanged keys keep their tenant (and its limiters).
      const old = this.byName.get(name);
      byName.set(name, old && old.json === json ? old : { json, hash: k.keySha256, tenant: makeTenant({ ...k, keySha256: k.keySha256 }, this.opts.limiters) });
    }
    this.byName = byName;
    this.hashes = new Map([...byName.values()].map((e) => [e.hash, e.tenant]));
    this.version = version;
  }
}
