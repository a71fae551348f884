/**
 * What the live dashboard shows, kept from the pool's events: recent commands per device
 * (the timeline), what each device is doing now and how many requests it holds, and per
 * model over a sliding window: SLO results, TTFT/TBT percentiles, request rate and errors
 * by code. Bounded: segments and outcomes older than the window are dropped.
 */
import type { CommandStart, DeviceState } from "../runtime/Pool.ts";
import type { ObservedPool } from "./ObservedPool.ts";
import { summarize } from "./requestSummary.ts";

export interface Segment {
  seq: number;
  device: string;
  kind: string;
  model?: string;
  startMs: number;
  endMs: number;
  requests: number;
}

/** p50 and p99 (nearest rank) of a window's samples, in ms; null before any. */
export interface Percentiles {
  p50: number | null;
  p99: number | null;
}

export interface ModelLive {
  id: string;
  waiting: number;
  running: number;
  /**
   * Over the window: requests scored, met, attainment (null before any), goodput (met/s);
   * requests ended per second (any outcome), TTFT and time-between-tokens percentiles, and
   * failed or rejected requests counted by their error code.
   */
  window: {
    scored: number;
    met: number;
    attainment: number | null;
    goodput: number;
    requestsPerS: number;
    ttftMs: Percentiles;
    tbtMs: Percentiles;
    errorsByCode: Record<string, number>;
  };
  total: { scored: number; met: number; attainment: number | null; tokens: number };
}

export interface DashboardState {
  nowMs: number;
  windowMs: number;
  devices: {
    id: string;
    up: boolean;
    /** `restarting` while quick retries last, `down` after (retried every 30 s by default). */
    state: DeviceState;
    /** A device not up: start attempts so far, the last error, and when the next attempt comes (pool ms; null while one runs). */
    restart?: { attempts: number; lastError: string; retryAtMs: number | null };
    running: { kind: string; model?: string; startMs: number } | null;
    /**
     * What the device is doing: the kind of the command it runs, else `busy` while requests
     * are bound to it between commands (the scheduler is choosing the next one), else `idle`.
     */
    activity: string;
    /** Requests whose KV lives on the device now (prefilled, decoding or swapped in). */
    boundRequests: number;
    resident: { model: string; ready: boolean }[];
    memoryBytes: number;
    weightBytes: number;
    kvBytes: number;
  }[];
  models: ModelLive[];
  /** Per API key name, over the window (empty without keys): requests ended, scored, met, output tokens. */
  tenants: { name: string; ended: number; scored: number; met: number; tokens: number }[];
  hostKvRequests: number;
  /**
   * Segments ended after the client's cursor. On the first message (cursor 0) they are
   * coalesced and capped (see FIRST_SEGMENTS_PER_DEVICE) so that it paints at once.
   */
  segments: Segment[];
  cursor: number;
}

/**
 * The first message's segments per device: a busy minute holds thousands of commands (a
 * 417 KB message, seen), while the page draws one pixel per ~50 ms of the window.
 */
export const FIRST_SEGMENTS_PER_DEVICE = 120;

/** An outcome kept for the window. */
interface Ended {
  atMs: number;
  modelId: string;
  met: boolean | null;
  ttftMs: number | null;
  gapsMs: number[];
  errorCode?: string;
  tenant?: string;
  tokens: number;
}

/** Nearest-rank percentiles of `xs` (sorted here). */
export function percentiles(xs: number[]): Percentiles {
  if (xs.length === 0) return { p50: null, p99: null };
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { p50: at(0.5), p99: at(0.99) };
}

/**
 * The code an ended request's client saw: rejected at admission is `rate_limit_exceeded`
 * (OverloadedError); failed is `kv_restore_failed` when its KV could not come back from the
 * host, else `device_failed`. The outcome carries the message only, hence the match.
 */
function errorCode(outcome: string, error: string | undefined): string | undefined {
  if (outcome === "rejected") return "rate_limit_exceeded";
  if (outcome !== "failed") return undefined;
  return error?.endsWith("the request was ended and can be retried") ? "kv_restore_failed" : "device_failed";
}

/**
 * Joins each device's back-to-back segments of one kind and model (gaps under `gapMs`, below
 * a pixel) and keeps the newest `perDevice` of each device, times rounded to the ms.
 */
export function coalesce(segments: Segment[], gapMs: number, perDevice: number): Segment[] {
  const byDevice = new Map<string, Segment[]>();
  for (const s of segments) {
    const row = byDevice.get(s.device) ?? [];
    byDevice.set(s.device, row);
    const last = row[row.length - 1];
    if (last && last.kind === s.kind && last.model === s.model && s.startMs - last.endMs < gapMs) {
      last.endMs = Math.max(last.endMs, Math.round(s.endMs));
      last.requests = Math.max(last.requests, s.requests);
      last.seq = s.seq;
    } else row.push({ ...s, startMs: Math.round(s.startMs), endMs: Math.round(s.endMs) });
  }
  return [...byDevice.values()].flatMap((row) => row.slice(-perDevice)).sort((a, b) => a.seq - b.seq);
}

export class LiveState {
  private readonly segments: Segment[] = [];
  private seq = 0;
  private readonly running = new Map<string, CommandStart>();
  private readonly recent: Ended[] = [];
  /** Where each request's KV lives now (device id), from the commands that moved it. */
  private readonly boundTo = new Map<string, string>();
  private readonly totals = new Map<string, { scored: number; met: number; tokens: number }>();
  /** Devices being brought back, from the pool's device events. */
  private readonly restarts = new Map<string, { state: Exclude<DeviceState, "up">; attempts: number; lastError: string; retryAtMs: number | null }>();

  constructor(
    private readonly pool: ObservedPool,
    readonly windowMs = 60_000,
  ) {
    for (const m of pool.models.keys()) this.totals.set(m, { scored: 0, met: 0, tokens: 0 });
    pool.on("commandStart", (c) => {
      this.running.set(c.deviceId, c);
      // Prefill puts a request's KV on the device, decode keeps it there, swapIn brings it
      // back; swapOut moves it to host memory. Its outcome unbinds it.
      if (c.kind === "swapOut") for (const id of c.requestIds) this.boundTo.delete(id);
      else if (c.kind === "prefill" || c.kind === "decode" || c.kind === "swapIn") for (const id of c.requestIds) this.boundTo.set(id, c.deviceId);
    });
    pool.on("command", (c) => {
      this.running.delete(c.deviceId);
      this.segments.push({
        seq: ++this.seq,
        device: c.deviceId,
        kind: c.crashed ? "crash" : c.kind,
        ...(c.modelId ? { model: c.modelId } : {}),
        startMs: c.startMs,
        endMs: c.endMs,
        requests: c.requestIds.length,
      });
      this.trim(c.endMs);
    });
    pool.on("device", (e) => {
      if (e.event === "restarted") this.restarts.delete(e.deviceId);
      else if (e.event === "crashed") this.restarts.set(e.deviceId, { state: "restarting", attempts: 0, lastError: e.detail, retryAtMs: null });
      else
        this.restarts.set(e.deviceId, {
          state: e.state ?? "restarting",
          attempts: e.attempt ?? 0,
          lastError: e.detail,
          retryAtMs: e.retryInMs === undefined ? null : pool.now() + e.retryInMs,
        });
    });
    pool.on("outcome", (o) => {
      this.boundTo.delete(o.id);
      const s = summarize(o);
      const t = this.totals.get(s.modelId)!;
      t.tokens += s.completionTokens;
      const code = errorCode(s.outcome, s.error);
      this.recent.push({
        atMs: pool.now(),
        modelId: s.modelId,
        met: s.sloMet,
        ttftMs: s.ttftMs,
        gapsMs: s.gapsMs,
        tokens: s.completionTokens,
        ...(code ? { errorCode: code } : {}),
        ...(o.tenant ? { tenant: o.tenant } : {}),
      });
      if (s.sloMet === null) return;
      t.scored++;
      if (s.sloMet) t.met++;
    });
  }

  private trim(nowMs: number): void {
    const from = nowMs - this.windowMs;
    let i = 0;
    while (i < this.segments.length && this.segments[i]!.endMs < from) i++;
    if (i > 0) this.segments.splice(0, i);
    let j = 0;
    while (j < this.recent.length && this.recent[j]!.atMs < from) j++;
    if (j > 0) this.recent.splice(0, j);
  }

  /**
   * Per model, the window's requests scored against their SLO and those that met it: what a
   * fleet node publishes in its record for the router's dashboard (one pass, no percentiles).
   */
  windowSlo(): Record<string, { scored: number; met: number }> {
    this.trim(this.pool.now());
    const out: Record<string, { scored: number; met: number }> = {};
    for (const r of this.recent) {
      if (r.met === null) continue;
      const m = out[r.modelId] ?? { scored: 0, met: 0 };
      out[r.modelId] = m;
      m.scored++;
      if (r.met) m.met++;
    }
    return out;
  }

  /** The state now, with the segments that ended after `cursor` (0: the whole window). */
  view(cursor: number): DashboardState {
    const nowMs = this.pool.now();
    this.trim(nowMs);
    const snap = this.pool.snapshot();
    // Before a full window has passed, goodput is over the time the server has run.
    const spanS = Math.min(this.windowMs, nowMs) / 1000;
    const models: ModelLive[] = [...this.pool.models.keys()].map((id) => {
      const ended = this.recent.filter((r) => r.modelId === id);
      const scored = ended.filter((r) => r.met !== null).length;
      const met = ended.filter((r) => r.met).length;
      const errorsByCode: Record<string, number> = {};
      for (const r of ended) if (r.errorCode) errorsByCode[r.errorCode] = (errorsByCode[r.errorCode] ?? 0) + 1;
      const t = this.totals.get(id)!;
      return {
        id,
        waiting: snap.waitingByModel[id] ?? 0,
        running: snap.runningByModel[id] ?? 0,
        window: {
          scored,
          met,
          attainment: scored ? met / scored : null,
          goodput: spanS > 0 ? met / spanS : 0,
          requestsPerS: spanS > 0 ? ended.length / spanS : 0,
          ttftMs: percentiles(ended.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs]))),
          tbtMs: percentiles(ended.flatMap((r) => r.gapsMs)),
          errorsByCode,
        },
        total: { scored: t.scored, met: t.met, attainment: t.scored ? t.met / t.scored : null, tokens: t.tokens },
      };
    });
    const bound = new Map<string, number>();
    for (const d of this.boundTo.values()) bound.set(d, (bound.get(d) ?? 0) + 1);
    const fresh = this.segments.filter((s) => s.seq > cursor);
    return {
      nowMs,
      windowMs: this.windowMs,
      devices: snap.devices.map((d) => {
        const run = this.running.get(d.id);
        const boundRequests = d.down ? 0 : (bound.get(d.id) ?? 0);
        const restart = d.down ? this.restarts.get(d.id) : undefined;
        return {
          id: d.id,
          up: !d.down,
          state: d.down ? (restart?.state ?? "restarting") : "up",
          ...(restart ? { restart: { attempts: restart.attempts, lastError: restart.lastError, retryAtMs: restart.retryAtMs } } : {}),
          running: run ? { kind: run.kind, ...(run.modelId ? { model: run.modelId } : {}), startMs: run.startMs } : null,
          activity: d.down ? "down" : run ? run.kind : boundRequests > 0 ? "busy" : "idle",
          boundRequests,
          resident: d.residentModels.map((m) => ({ model: m.modelId, ready: m.ready })),
          memoryBytes: d.memoryBytes,
          weightBytes: d.weightBytes,
          kvBytes: d.kvBytes,
        };
      }),
      models,
      tenants: tenantsOf(this.recent),
      hostKvRequests: snap.hostKvRequests,
      segments: cursor === 0 ? coalesce(fresh, this.windowMs / 1000, FIRST_SEGMENTS_PER_DEVICE) : fresh,
      cursor: this.seq,
    };
  }
}

/** The window's ended requests per API key name, by name. */
function tenantsOf(recent: Ended[]): DashboardState["tenants"] {
  const by = new Map<string, DashboardState["tenants"][number]>();
  for (const r of recent) {
    if (r.tenant === undefined) continue;
    let t = by.get(r.tenant);
    if (!t) {
      t = { name: r.tenant, ended: 0, scored: 0, met: 0, tokens: 0 };
      by.set(r.tenant, t);
    }
    t.ended++;
    t.tokens += r.tokens;
    if (r.met !== null) t.scored++;
    if (r.met) t.met++;
  }
  return [...by.values()].sort((a, b) => a.name.localeCompare(b.name));
}
