/**
 * What the live dashboard shows, kept from the pool's events: recent commands per device
 * (the timeline), the command each device runs now, and per-model SLO results over a
 * sliding window. Bounded: segments and outcomes older than the window are dropped.
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

export interface ModelLive {
  id: string;
  waiting: number;
  running: number;
  /** Over the window: requests scored, met, attainment (null before any), goodput (met/s). */
  window: { scored: number; met: number; attainment: number | null; goodput: number };
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
    resident: { model: string; ready: boolean }[];
    memoryBytes: number;
    weightBytes: number;
    kvBytes: number;
  }[];
  models: ModelLive[];
  hostKvRequests: number;
  /** Segments ended after the client's cursor. */
  segments: Segment[];
  cursor: number;
}

export class LiveState {
  private readonly segments: Segment[] = [];
  private seq = 0;
  private readonly running = new Map<string, CommandStart>();
  private readonly recent: { atMs: number; modelId: string; met: boolean }[] = [];
  private readonly totals = new Map<string, { scored: number; met: number; tokens: number }>();
  /** Devices being brought back, from the pool's device events. */
  private readonly restarts = new Map<string, { state: Exclude<DeviceState, "up">; attempts: number; lastError: string; retryAtMs: number | null }>();

  constructor(
    private readonly pool: ObservedPool,
    readonly windowMs = 60_000,
  ) {
    for (const m of pool.models.keys()) this.totals.set(m, { scored: 0, met: 0, tokens: 0 });
    pool.on("commandStart", (c) => this.running.set(c.deviceId, c));
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
      const s = summarize(o);
      const t = this.totals.get(s.modelId)!;
      t.tokens += s.completionTokens;
      if (s.sloMet === null) return;
      t.scored++;
      if (s.sloMet) t.met++;
      this.recent.push({ atMs: pool.now(), modelId: s.modelId, met: s.sloMet });
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

  /** The state now, with the segments that ended after `cursor` (0: the whole window). */
  view(cursor: number): DashboardState {
    const nowMs = this.pool.now();
    this.trim(nowMs);
    const snap = this.pool.snapshot();
    // Before a full window has passed, goodput is over the time the server has run.
    const spanS = Math.min(this.windowMs, nowMs) / 1000;
    const models: ModelLive[] = [...this.pool.models.keys()].map((id) => {
      const win = this.recent.filter((r) => r.modelId === id);
      const met = win.filter((r) => r.met).length;
      const t = this.totals.get(id)!;
      return {
        id,
        waiting: snap.waitingByModel[id] ?? 0,
        running: snap.runningByModel[id] ?? 0,
        window: { scored: win.length, met, attainment: win.length ? met / win.length : null, goodput: spanS > 0 ? met / spanS : 0 },
        total: { scored: t.scored, met: t.met, attainment: t.scored ? t.met / t.scored : null, tokens: t.tokens },
      };
    });
    return {
      nowMs,
      windowMs: this.windowMs,
      devices: snap.devices.map((d) => {
        const run = this.running.get(d.id);
        const restart = d.down ? this.restarts.get(d.id) : undefined;
        return {
          id: d.id,
          up: !d.down,
          state: d.down ? (restart?.state ?? "restarting") : "up",
          ...(restart ? { restart: { attempts: restart.attempts, lastError: restart.lastError, retryAtMs: restart.retryAtMs } } : {}),
          running: run ? { kind: run.kind, ...(run.modelId ? { model: run.modelId } : {}), startMs: run.startMs } : null,
          resident: d.residentModels.map((m) => ({ model: m.modelId, ready: m.ready })),
          memoryBytes: d.memoryBytes,
          weightBytes: d.weightBytes,
          kvBytes: d.kvBytes,
        };
      }),
      models,
      hostKvRequests: snap.hostKvRequests,
      segments: this.segments.filter((s) => s.seq > cursor),
      cursor: this.seq,
    };
  }
}
