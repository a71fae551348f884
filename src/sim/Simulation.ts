/**
 * Runs the real scheduler (../scheduler) in virtual time against simulated accelerators.
 * No scheduling logic lives here: the simulation only turns commands into durations with
 * the cost model, advances the clock and records what happened.
 */
import type { Command, DeviceProfile, SloTargets } from "../core/types.ts";
import { sloReport, type RequestTrace, type SloReport } from "../core/slo.ts";
import { Scheduler, type SchedulerOptions } from "../scheduler/Scheduler.ts";
import { kvTokens } from "../scheduler/state.ts";
import type { WorkloadRequest } from "../workload/workload.ts";
import { EventQueue } from "./EventQueue.ts";
import type { SimCosts } from "./SimCosts.ts";

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
  traces: RequestTrace[];
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
  const traces = new Map<string, RequestTrace>();
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

  const planIdle = (): void => {
    for (const d of [...idle]) {
      const cmd = scheduler.plan(devices[d]!.id, now);
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
  for (let ev = queue.pop(); ev; ev = queue.pop()) {
    if (++events > maxEvents) {
      const last = timeline.slice(-12).map((e) => `${e.device}:${e.kind}:${e.model ?? ""}@${e.startMs.toFixed(0)}`);
      throw new Error(`simulation exceeded ${maxEvents} events at ${now.toFixed(0)} ms (last: ${last.join(" ")})`);
    }
    now = ev.timeMs;
    const e = ev.payload;
    if (e.kind === "arrival") {
      const r = e.req;
      const id = `r${r.index}`;
      const trace: RequestTrace = { modelId: r.modelId, arrivalMs: r.arrivalMs, tokenTimesMs: [], expectedTokens: r.outputTokens, ok: false };
      traces.set(id, trace);
      // A rejected request keeps its empty trace: it counts as a miss.
      scheduler.submit({ id, modelId: r.modelId, arrivalMs: r.arrivalMs, promptTokens: r.inputTokens, maxOutputTokens: r.outputTokens }, now);
    } else {
      const { cmd, durationMs, device } = e;
      busyMs += durationMs;
      if (cfg.recordTimeline) timeline.push({ device, kind: cmd.kind, ...("modelId" in cmd ? { model: cmd.modelId } : {}), startMs: now - durationMs, endMs: now });
      if (cmd.kind === "prefill" && cmd.final) traces.get(cmd.requestId)?.tokenTimesMs.push(now);
      if (cmd.kind === "decode") {
        const step = durationMs / cmd.steps;
        for (const id of cmd.requestIds) {
          const t = traces.get(id);
          const r = scheduler.requests.get(id);
          if (!t || !r) continue;
          const n = Math.min(cmd.steps, r.spec.maxOutputTokens - r.generatedTokens);
          for (let k = 1; k <= n; k++) t.tokenTimesMs.push(now - durationMs + k * step);
        }
      }
      for (const f of scheduler.onCommandDone(devices[device]!.id, { durationMs }, now)) {
        const t = traces.get(f.requestId);
        if (t) t.ok = f.reason === "length" || f.reason === "stop";
      }
      idle.add(device);
    }
    planIdle();
  }
  const all = [...traces.values()];
  const horizon = requests.length ? requests[requests.length - 1]!.arrivalMs : 0;
  return {
    traces: all,
    report: sloReport(all, cfg.slo, horizon),
    utilization: devices.length && now > 0 ? busyMs / (devices.length * now) : 0,
    switches,
    timeline,
    simulatedMs: now,
  };
}
