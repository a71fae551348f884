/**
 * Runs the real scheduler (../scheduler) in virtual time against simulated accelerators.
 * No scheduling logic lives here: the simulation only turns commands into durations with
 * the cost model, advances the clock and records what happened.
 */
import type { Command, DeviceProfile, SloTargets } from "../core/types.ts";
import type { RequestTrace, SloReport } from "../core/slo.ts";
import { Scheduler, type SchedulerOptions } from "../scheduler/Scheduler.ts";
import { kvTokens } from "../scheduler/state.ts";
import type { WorkloadRequest } from "../workload/workload.ts";
import { EventQueue } from "./EventQueue.ts";
import type { SimCosts } from "./SimCosts.ts";
import { summaryReport, TraceStats, type TraceSummary } from "./traceStats.ts";

/**
 * The policies the simulator and the planner size: the scheduler's registered policies plus
 * `dedicated` (the `request` policy on devices reserved for one model each).
 */
export const SIM_POLICIES = ["dedicated", "serverless", "request", "token"] as const;
export type SimPolicy = (typeof SIM_POLICIES)[number];

export interface SimConfig {
  /** The devices and what commands cost on them (SimCosts.ts). */
  costs: SimCosts;
  /** Models served (default: every model of `costs`). */
  modelIds?: string[];
  slo: (modelId: string) => SloTargets;
  devices: number;
  policy: SimPolicy;
  /** dedicated: devices per model (sum = devices). */
  dedicated?: Record<string, number>;
  /**
   * Price loads as moving the weights at this host-link bandwidth (GB/s) when that is slower
   * than the cost model (a serverless loader from a host cache, ≈12.6 GB/s: simulator.md).
   */
  loadGBps?: number;
  /** Largest decode batch per model. */
  maxBatch?: number;
  contextTokens?: number;
  scheduler?: Partial<SchedulerOptions>;
  recordTimeline?: boolean;
  /**
   * Keep every request's token times in `traces` (default true). The report's figures never
   * need them (they stream into `summary`); leave them out to keep long traces small.
   */
  recordTraces?: boolean;
  /**
   * Stop as soon as the run can no longer reach this attainment nor this on-schedule score
   * (the planner's fleet search: such a size fails whatever happens next). The result is
   * then marked `stopped` and its figures cover only what ran.
   */
  stopBelow?: { attainment: number; onScheduleScore: number };
  /** Told how many requests have arrived, now and then (every few thousand events). */
  onProgress?: (arrivedRequests: number) => void;
  /** Plan every idle device at every event, skipping none (to check the skipping against). */
  planEveryIdleDevice?: boolean;
  /** Safety net: fail instead of looping forever (default 50 million events). */
  maxEvents?: number;
}

export interface TimelineEntry {
  device: number;
  kind: Command["kind"];
  model?: string;
  startMs: number;
  endMs: number;
}

export interface SimResult {
  /** Empty unless `recordTraces`. */
  traces: RequestTrace[];
  /** Every request's outcome, compact (what `report` is computed from). */
  summary: TraceSummary;
  /** Stopped early by `stopBelow`: the targets are out of reach. */
  stopped: boolean;
  report: SloReport;
  /** Busy share of device time (any command). */
  utilization: number;
  switches: number;
  timeline: TimelineEntry[];
  simulatedMs: number;
}

type Ev = { kind: "arrival"; req: WorkloadRequest } | { kind: "done"; device: number; cmd: Command; durationMs: number };

export function simulate(cfg: SimConfig, requests: WorkloadRequest[]): SimResult {
  const costs = cfg.costs;
  const maxBatch = cfg.maxBatch ?? costs.defaults?.maxBatch ?? 64;
  const contextTokens = cfg.contextTokens ?? costs.defaults?.contextTokens ?? 32768;
  const memoryBytes = costs.memoryBytes;
  const modelIds = cfg.modelIds ?? costs.modelIds;
  const profiles = modelIds.map((m) => costs.profile(m, cfg.slo(m), maxBatch, contextTokens));

  const devices: DeviceProfile[] = [];
  if (cfg.policy === "dedicated") {
    for (const m of modelIds) for (let i = 0; i < (cfg.dedicated?.[m] ?? 0); i++) devices.push({ id: `d${devices.length}`, memoryBytes, allowedModels: [m] });
  } else {
    for (let i = 0; i < cfg.devices; i++) devices.push({ id: `d${i}`, memoryBytes });
  }
  const scheduler = new Scheduler(profiles, devices, {
    prefillChunkTokens: 4096,
    decodeSliceMs: 250,
    ...costs.defaults?.scheduler,
    ...cfg.scheduler,
    // Dedicated devices hold one model each, so request-level serving never swaps.
    policy: cfg.policy === "dedicated" ? "request" : cfg.policy,
  });
  const weightBytes = new Map(profiles.map((p) => [p.id, p.weightBytes]));
  const loadMs = (modelId: string): number => {
    const ms = costs.loadMs(modelId);
    return cfg.loadGBps ? Math.max(ms, (weightBytes.get(modelId)! / (cfg.loadGBps * 1e9)) * 1000) : ms;
  };

  const queue = new EventQueue<Ev>();
  for (const r of requests) queue.push(r.arrivalMs, 0, { kind: "arrival", req: r });
  const keepTraces = cfg.recordTraces ?? true;
  const traces = new Map<string, RequestTrace>();
  const stats = new TraceStats(requests.length);
  const slots = new Map<string, number>();
  const sloOf = new Map<string, SloTargets>();
  const timeline: TimelineEntry[] = [];
  const idle = new Set(devices.map((_, i) => i));
  let busyMs = 0;
  let switches = 0;
  let now = 0;

  const durationOf = (cmd: Command): number => {
    switch (cmd.kind) {
      case "load":
        switches++;
        // Dropping weights to make room is part of a switch's cost (the cost model's fixed part).
        return loadMs(cmd.modelId);
      case "evict":
        return cmd.modelIds.reduce((t, m) => t + costs.evictMs(m), 0);
      case "prefill":
        return costs.prefillMs(cmd.modelId, cmd.fromToken, cmd.toToken);
      case "decode": {
        let ctx = 0;
        for (const id of cmd.requestIds) {
          const r = scheduler.requests.get(id)!;
          ctx += r.spec.promptTokens + r.generatedTokens;
        }
        const avg = ctx / cmd.requestIds.length + cmd.steps / 2;
        return cmd.steps * costs.decodeStepMs(cmd.modelId, cmd.requestIds.length, avg);
      }
      case "swapOut":
      case "swapIn": {
        let tokens = 0;
        for (const id of cmd.requestIds) {
          const r = scheduler.requests.get(id);
          if (r) tokens += kvTokens(r);
        }
        return costs.kvSwapMs(cmd.modelId, tokens);
      }
    }
  };

  // An idle device that found nothing to take, while nothing it could take has come since,
  // would get null again and change nothing (the scheduler's mayTakeWork): it is skipped.
  // Decision-preserving: sim.test.ts compares reports against planning every device.
  const planEvery = cfg.planEveryIdleDevice === true;
  const planIdle = (): void => {
    // Deleting the visited device while iterating a Set is safe and keeps the order.
    for (const d of idle) {
      const id = devices[d]!.id;
      if (!planEvery && !scheduler.mayTakeWork(id, now)) continue;
      const cmd = scheduler.plan(id, now);
      if (!cmd) continue;
      idle.delete(d);
      // Devices sharing a machine slow each other down (priced when the command starts).
      const slowdown = costs.contention ? costs.contention(devices.length - idle.size) : 1;
      const durationMs = durationOf(cmd) * slowdown;
      queue.push(now + durationMs, 1, { kind: "done", device: d, cmd, durationMs });
    }
  };

  let events = 0;
  const maxEvents = cfg.maxEvents ?? 50_000_000;
  let stopped = false;
  for (let ev = queue.pop(); ev; ev = queue.pop()) {
    if (++events > maxEvents) {
      const last = timeline.slice(-12).map((e) => `${e.device}:${e.kind}:${e.model ?? ""}@${e.startMs.toFixed(0)}`);
      throw new Error(`simulation exceeded ${maxEvents} events at ${now.toFixed(0)} ms (last: ${last.join(" ")})`);
    }
    now = ev.timeMs;
    if (cfg.onProgress && (events & 0xfff) === 0) cfg.onProgress(slots.size);
    const e = ev.payload;
    if (e.kind === "arrival") {
      const r = e.req;
      const id = `r${r.index}`;
      let slo = sloOf.get(r.modelId);
      if (!slo) {
        slo = cfg.slo(r.modelId);
        sloOf.set(r.modelId, slo);
      }
      slots.set(id, stats.arrive(r.arrivalMs, r.outputTokens, slo));
      if (keepTraces) traces.set(id, { modelId: r.modelId, arrivalMs: r.arrivalMs, tokenTimesMs: [], expectedTokens: r.outputTokens, ok: false });
      // A rejected request never produces a token nor ends: it counts as a miss.
      scheduler.submit(
        { id, modelId: r.modelId, arrivalMs: r.arrivalMs, promptTokens: r.inputTokens, maxOutputTokens: r.outputTokens, ...(r.tenant ? { tenant: r.tenant } : {}) },
        now,
      );
    } else {
      const { cmd, durationMs, device } = e;
      busyMs += durationMs;
      if (cfg.recordTimeline) timeline.push({ device, kind: cmd.kind, ...("modelId" in cmd ? { model: cmd.modelId } : {}), startMs: now - durationMs, endMs: now });
      if (cmd.kind === "prefill" && cmd.final) {
        const slot = slots.get(cmd.requestId);
        if (slot !== undefined) stats.token(slot, now);
        if (keepTraces) traces.get(cmd.requestId)?.tokenTimesMs.push(now);
      }
      if (cmd.kind === "decode") {
        const step = durationMs / cmd.steps;
        for (const id of cmd.requestIds) {
          const slot = slots.get(id);
          const r = scheduler.requests.get(id);
          if (slot === undefined || !r) continue;
          const t = keepTraces ? traces.get(id) : undefined;
          const n = Math.min(cmd.steps, r.spec.maxOutputTokens - r.generatedTokens);
          for (let k = 1; k <= n; k++) {
            const at = now - durationMs + k * step;
            stats.token(slot, at);
            t?.tokenTimesMs.push(at);
          }
        }
      }
      for (const f of scheduler.onCommandDone(devices[device]!.id, { durationMs }, now)) {
        const ok = f.reason === "length" || f.reason === "stop";
        const slot = slots.get(f.requestId);
        if (slot !== undefined) stats.end(slot, ok);
        const t = keepTraces ? traces.get(f.requestId) : undefined;
        if (t) t.ok = ok;
      }
      idle.add(device);
    }
    // Waiting requests past the late-wait cap end as misses (none while the cap is off).
    for (const f of scheduler.expire(now)) {
      const slot = slots.get(f.requestId);
      if (slot !== undefined) stats.end(slot, false);
    }
    if (cfg.stopBelow && stats.outOfReach(cfg.stopBelow.attainment, cfg.stopBelow.onScheduleScore)) {
      stopped = true;
      break;
    }
    planIdle();
  }
  const horizon = requests.length ? requests[requests.length - 1]!.arrivalMs : 0;
  const summary = stats.summary();
  return {
    traces: [...traces.values()],
    summary,
    stopped,
    report: summaryReport(summary, horizon),
    utilization: devices.length && now > 0 ? busyMs / (devices.length * now) : 0,
    switches,
    timeline,
    simulatedMs: now,
  };
}
