/**
 * A router's view of the fleet: the node records in Redis, read every poll and at once when
 * a node announces a change, with Redis's time of the read. When Redis cannot be reached the
 * last view is kept (and judged at its own time), so routing goes on to the nodes that still
 * answer. Used by `pitcher route` and `pitcher fleet`.
 */
import { createClient } from "redis";
import { ConfigError } from "../core/errors.ts";
import { EVENTS_CHANNEL, type NodeRecord, NODES_SET, nodeKey, parseRecord } from "./record.ts";
import { redactUrl, tlsSocketOptions } from "./redisUrl.ts";

export interface FleetViewOptions {
  redisUrl: string;
  /** The CA for a `rediss://` URL whose certificate no public CA signed. */
  tlsCaFile?: string | undefined;
  /** How often the records are read (ms). */
  pollMs: number;
  /** Redis counts as unreachable when no read succeeded for this long (ms). */
  unreachableAfterMs: number;
  log?: (msg: string) => void;
  /** Also listen for announcements (a router; `pitcher fleet` reads once). */
  subscribe?: boolean;
}

const CONNECT_TIMEOUT_MS = 5_000;

export class FleetView {
  private readonly client;
  private subscriber: ReturnType<typeof createClient> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | null = null;
  private again = false;
  private records: NodeRecord[] = [];
  /** Redis time minus performance.now() at the last read: maps local time to Redis's clock. */
  private offsetMs = 0;
  /** performance.now() and Redis time of the last successful read. */
  private readAtLocal = Number.NEGATIVE_INFINITY;
  private readAtRedis = 0;
  private wasReachable = true;
  private closed = false;
  /** The client's last error: why a first connection failed (a wrong password, an untrusted certificate). */
  private lastError: Error | undefined;

  constructor(private readonly opts: FleetViewOptions) {
    this.client = createClient({
      url: opts.redisUrl,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: CONNECT_TIMEOUT_MS,
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1_000),
        ...tlsSocketOptions({ url: opts.redisUrl, tlsCaFile: opts.tlsCaFile }),
      },
    });
    this.client.on("error", (e: Error) => (this.lastError = e));
  }

  /** Connect and read once (or fail: a router that never reached Redis has nothing to route on). */
  async start(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms${this.lastError ? ` (${this.lastError.message})` : ""}`)), CONNECT_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.client.connect().then(() => this.read()), late]);
    } catch (e) {
      this.client.destroy();
      throw new ConfigError(`--cluster: cannot reach Redis at ${redactUrl(this.opts.redisUrl)}: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    this.timer = setInterval(() => void this.refresh(), this.opts.pollMs);
    if (this.opts.subscribe) {
      const sub = this.client.duplicate();
      sub.on("error", () => {});
      this.subscriber = sub;
      // Announcements only speed things up: the poll is the truth, so a lost subscription costs latency, not correctness.
      await sub
        .connect()
        .then(() => sub.subscribe(EVENTS_CHANNEL, () => void this.refresh()))
        .catch(() => {});
    }
  }

  /** Now on Redis's clock (estimated from the last read). */
  redisNowMs(): number {
    return performance.now() + this.offsetMs;
  }

  /** Whether a read succeeded recently. */
  get reachable(): boolean {
    return performance.now() - this.readAtLocal <= this.opts.unreachableAfterMs;
  }

  /**
   * The records and the time to judge their freshness at: when they were read. A record's
   * age at the read says whether its node renews; a router slow to read again must not take
   * its own lag for the node's. With Redis unreachable the last view is judged as it was read.
   */
  snapshot(): { records: readonly NodeRecord[]; asOfMs: number; nowMs: number; reachable: boolean } {
    return { records: this.records, asOfMs: this.readAtRedis, nowMs: this.redisNowMs(), reachable: this.reachable };
  }

  /** Read again now (a poll, or an announcement); reads never overlap. */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = Promise.race([this.read(), new Promise<void>((r) => setTimeout(r, this.opts.unreachableAfterMs).unref())])
      .catch(() => {})
      .finally(() => {
        this.reading = null;
        const reachable = this.reachable;
        if (reachable !== this.wasReachable) this.opts.log?.(reachable ? "fleet: Redis reachable again" : "fleet: Redis unreachable; routing on the last view");
        this.wasReachable = reachable;
        if (this.again) {
          this.again = false;
          void this.refresh();
        }
      });
    return this.reading;
  }

  private async read(): Promise<void> {
    const t0 = performance.now();
    const [time, ids] = (await this.client.multi().time().sMembers(NODES_SET).exec()) as unknown as [[string, string] | Date, string[]];
    const t1 = performance.now();
    const texts = ids.length > 0 ? await this.client.mGet(ids.map(nodeKey)) : [];
    const gone = ids.filter((_, i) => texts[i] === null);
    // Expired records leave the index too (any reader may tidy it; a live node adds itself back).
    if (gone.length > 0) await this.client.sRem(NODES_SET, gone);
    this.records = texts.map((t) => parseRecord(t)).filter((r): r is NodeRecord => r !== null);
    const redisMs = time instanceof Date ? time.getTime() : Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    this.offsetMs = redisMs - (t0 + t1) / 2;
    this.readAtLocal = t1;
    this.readAtRedis = redisMs;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.subscriber?.destroy();
    this.client.destroy();
  }
}
