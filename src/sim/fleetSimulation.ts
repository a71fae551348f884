/**
 * `simulate --nodes N`: N nodes of D devices, each with its own Scheduler (parked KV stays on
 * its node), on one virtual clock, with every arrival dispatched by the router's own routing
 * function (fleet/routing.ts) over node records built as fleet/node.ts builds them and as
 * stale as production's: a node rewrites its record every heartbeat and at once on a load or
 * an eviction (start and end), the router reads records every poll and at once on such an
 * announcement, and counts what it sent since a record as load that record cannot show.
 * As in Simulation.ts, no scheduling logic lives here.
 */
import type { Command, DeviceProfile, ModelId, SloTargets } from "../core/types.ts";
import { type Candidate, nextStep, rankNodes, type Attempt, type SentRequest } from "../fleet/routing.ts";
import { type NodeRecord, poolRecord } from "../fleet/record.ts";
import { Scheduler } from "../scheduler/Scheduler.ts";
import { kvTokens } from "../scheduler/state.ts";
import type { WorkloadRequest } from "../workload/workload.ts";
import { EventQueue } from "./EventQueue.ts";
import type { SimConfig, SimResult } from "./Simulation.ts";
import { summaryReport, TraceStats } from "./traceStats.ts";

export interface FleetSimConfig extends Omit<SimConfig, "devices" | "dedicated" | "stopBelow" | "planEveryIdleDevice" | "recordTraces"> {
  nodes: number;
  devicesPerNode: number;
  /** How often a node rewrites its record (virtual ms; production's default 500). */
  heartbeatMs?: number;
  /** How often the router reads the records (virtual ms; production's 250). */
  pollMs?: number;
  /** Nodes (0-based) down for the whole run: they publish no record, so nothing is routed to them. */
  downNodes?: number[];
}

export interface FleetSimResult extends SimResult {
  /** Requests routed to each node (a request refused by every candidate counts nowhere). */
  routed: number[];
  /** Requests no node took (no fresh record with the model, or every candidate refused). */
  unrouted: number;
}

/** The router's limits (fleet/DESIGN.md): tries per request and the TTFT budget for re-sends. */
const MAX_ATTEMPTS = 4;
const DISPATCH_BUDGET_MS = 10_000;

type Ev =
  | { kind: "arrival"; req: WorkloadRequest }
  | { kind: "done"; node: number; device: number; cmd: Command; durationMs: number }
  | { kind: "heartbeat"; node: number }
  | { kind: "poll" };

interface SimNode {
  id: string;
  scheduler: Scheduler;
  devices: DeviceProfile[];
  idle: Set<number>;
  quiet: Uint8Array;
  modelIds: ModelId[];
}

export function simulateFleet(cfg: FleetSimConfig, requests: WorkloadRequest[]): FleetSimResult {
  const costs = cfg.costs;
  const maxBatch = cfg.maxBatch ?? costs.defaults?.maxBatch ?? 64;
  const contextTokens = cfg.contextTokens ?? costs.defaults?.contextTokens ?? 32768;
  const modelIds = cfg.modelIds ?? costs.modelIds;
  const profiles = modelIds.map((m) => costs.profile(m, cfg.slo(m), maxBatch, contextTokens));
  const heartbeatMs = cfg.heartbeatMs ?? 500;
  const pollMs = cfg.pollMs ?? 250;
  const down = new Set(cfg.downNodes ?? []);
  if (cfg.policy === "dedicated") throw new Error("--nodes: the dedicated policy is not simulated per node");

  const nodes: SimNode[] = [];
  for (let n = 0; n < cfg.nodes; n++) {
    const devices: DeviceProfile[] = [];
    for (let i = 0; i < cfg.devicesPerNode; i++) devices.push({ id: `d${i}`, memoryBytes: costs.memoryBytes });
    const scheduler = new Scheduler(profiles, devices, { prefillChunkTokens: 4096, decodeSliceMs: 250, ...costs.defaults?.scheduler, ...cfg.scheduler, policy: cfg.policy });
    nodes.push({ id: `node${n}`, scheduler, devices, idle: new Set(devices.map((_, i) => i)), quiet: new Uint8Array(devices.length), modelIds });
  }
  const weightBytes = new Map(profiles.map((p) => [p.id, p.weightBytes]));
  const loadMs = (modelId: string): number => {
    const ms = costs.loadMs(modelId);
    return cfg.loadGBps ? Math.max(ms, (weightBytes.get(modelId)! / (cfg.loadGBps * 1e9)) * 1000) : ms;
  };

  const queue = new EventQueue<Ev>();
  for (const r of requests) queue.push(r.arrivalMs, 0, { kind: "arrival", req: r });
  const stats = new TraceStats(requests.length);
  const slots = new Map<string, number>();
  const sloOf = new Map<string, SloTargets>();
  const timeline: SimResult["timeline"] = [];
  const routed = nodes.map(() => 0);
  let unrouted = 0;
  let busyMs = 0;
  let switches = 0;
  let now = 0;

  // What Redis holds (per node, rewritten by the node) and what the router last read of it.
  const published = new Map<string, NodeRecord>();
  let view: NodeRecord[] = [];
  const inFlight = new Map<string, SentRequest>();
  const readView = (): void => {
    view = [...published.values()];
  };
  const publish = (n: number, announce: boolean): void => {
    if (down.has(n)) return;
    published.set(nodes[n]!.id, recordOf(nodes[n]!, now, heartbeatMs));
    if (announce) readView();
  };
  const durationOf = (node: SimNode, cmd: Command): number => {
    switch (cmd.kind) {
      case "load":
        switches++;
        return loadMs(cmd.modelId);
      case "evict":
        return cmd.modelIds.reduce((t, m) => t + costs.evictMs(m), 0);
      case "prefill":
        return costs.prefillMs(cmd.modelId, cmd.fromToken, cmd.toToken);
      case "decode": {
        let ctx = 0;
        for (const id of cmd.requestIds) {
          const r = node.scheduler.requests.get(id)!;
          ctx += r.spec.promptTokens + r.generatedTokens;
        }
        return cmd.steps * costs.decodeStepMs(cmd.modelId, cmd.requestIds.length, ctx / cmd.requestIds.length + cmd.steps / 2);
      }
      case "swapOut":
      case "swapIn": {
        let tokens = 0;
        for (const id of cmd.requestIds) {
          const r = node.scheduler.requests.get(id);
          if (r) tokens += kvTokens(r);
        }
        return costs.kvSwapMs(cmd.modelId, tokens);
      }
    }
  };
  // As Simulation.ts: a device with nothing to do is not planned again until there is work.
  const planIdle = (n: number): void => {
    const node = nodes[n]!;
    const s = node.scheduler;
    for (const d of node.idle) {
      const empty = s.groups.length === 0 && s.parked.size === 0 && s.boundTo.get(node.devices[d]!.id)!.size === 0;
      if (empty && node.quiet[d]) continue;
      const cmd = s.plan(node.devices[d]!.id, now);
      node.quiet[d] = empty && !cmd ? 1 : 0;
      if (!cmd) continue;
      node.idle.delete(d);
      const slowdown = costs.contention ? costs.contention(node.devices.length - node.idle.size) : 1;
      const durationMs = durationOf(node, cmd) * slowdown;
      queue.push(now + durationMs, 1, { kind: "done", node: n, device: d, cmd, durationMs });
      // Production rewrites and announces the record when a load or an eviction starts.
      if (cmd.kind === "load" || cmd.kind === "evict") publish(n, true);
    }
  };
  const ended = (id: string, ok: boolean): void => {
    inFlight.delete(id);
    const slot = slots.get(id);
    if (slot !== undefined) stats.end(slot, ok);
  };
  /** The router's dispatch: rank on its view, send; a refusal (the node's 429) tries the next candidate. */
  const dispatch = (r: WorkloadRequest, id: string): void => {
    const attempts: Attempt[] = [];
    const ranked: Candidate[] = rankNodes({ records: view, modelId: r.modelId, asOfMs: now, nowMs: now, inFlight: [...inFlight.values()], excludedUntil: new Map() });
    for (;;) {
      const step = nextStep(ranked, attempts, { maxAttempts: MAX_ATTEMPTS, deadlineMs: r.arrivalMs + DISPATCH_BUDGET_MS, nowMs: now });
      if (step.kind !== "send") break;
      const n = Number(step.candidate.nodeId.slice(4));
      const spec = { id, modelId: r.modelId, arrivalMs: r.arrivalMs, promptTokens: r.inputTokens, maxOutputTokens: r.outputTokens, ...(r.tenant ? { tenant: r.tenant } : {}) };
      const res = nodes[n]!.scheduler.submit(spec, now);
      if (res.accepted) {
        routed[n]!++;
        inFlight.set(id, { nodeId: step.candidate.nodeId, modelId: r.modelId, sentAtMs: now });
        return;
      }
      attempts.push({ nodeId: step.candidate.nodeId, kind: "rate_limited", retryAfterS: Math.ceil(res.retryAfterMs / 1000) });
    }
    // Refused everywhere (429/503 to the client): never produces a token, a miss, as in Simulation.ts.
    unrouted++;
  };

  // A node's first record is written when it joins (before any request); heartbeats are staggered.
  for (let n = 0; n < nodes.length; n++) {
    publish(n, false);
    queue.push(heartbeatMs * (1 + n / nodes.length), 2, { kind: "heartbeat", node: n });
  }
  readView();
  queue.push(pollMs, 2, { kind: "poll" });
  const lastArrivalMs = requests.length ? requests[requests.length - 1]!.arrivalMs : 0;

  let events = 0;
  const maxEvents = cfg.maxEvents ?? 50_000_000;
  for (let ev = queue.pop(); ev; ev = queue.pop()) {
    if (++events > maxEvents) throw new Error(`fleet simulation exceeded ${maxEvents} events at ${now.toFixed(0)} ms`);
    const e = ev.payload;
    if (e.kind === "heartbeat" || e.kind === "poll") {
      // Records matter only to routing, which happens at arrivals: the clocks stop after the
      // last one and never move the clock past it (nor keep a run alive).
      if (ev.timeMs > lastArrivalMs) continue;
      now = ev.timeMs;
      if (e.kind === "heartbeat") publish(e.node, false);
      else readView();
      queue.push(now + (e.kind === "poll" ? pollMs : heartbeatMs), 2, e);
      continue;
    }
    now = ev.timeMs;
    if (cfg.onProgress && (events & 0xfff) === 0) cfg.onProgress(slots.size);
    if (e.kind === "arrival") {
      const r = e.req;
      const id = `r${r.index}`;
      let slo = sloOf.get(r.modelId);
      if (!slo) {
        slo = cfg.slo(r.modelId);
        sloOf.set(r.modelId, slo);
      }
      slots.set(id, stats.arrive(r.arrivalMs, r.outputTokens, slo));
      dispatch(r, id);
    } else {
      const node = nodes[e.node]!;
      const { cmd, durationMs, device } = e;
      busyMs += durationMs;
      if (cfg.recordTimeline)
        timeline.push({ device: e.node * cfg.devicesPerNode + device, kind: cmd.kind, ...("modelId" in cmd ? { model: cmd.modelId } : {}), startMs: now - durationMs, endMs: now });
      if (cmd.kind === "prefill" && cmd.final) {
        const slot = slots.get(cmd.requestId);
        if (slot !== undefined) stats.token(slot, now);
      }
      if (cmd.kind === "decode") {
        const step = durationMs / cmd.steps;
        for (const id of cmd.requestIds) {
          const slot = slots.get(id);
          const r = node.scheduler.requests.get(id);
          if (slot === undefined || !r) continue;
          const k1 = Math.min(cmd.steps, r.spec.maxOutputTokens - r.generatedTokens);
          for (let k = 1; k <= k1; k++) stats.token(slot, now - durationMs + k * step);
        }
      }
      for (const f of node.scheduler.onCommandDone(node.devices[device]!.id, { durationMs }, now)) {
        ended(f.requestId, f.reason === "length" || f.reason === "stop");
      }
      node.idle.add(device);
      if (cmd.kind === "load" || cmd.kind === "evict") publish(e.node, true);
    }
    for (let n = 0; n < nodes.length; n++) {
      for (const f of nodes[n]!.scheduler.expire(now)) ended(f.requestId, false);
    }
    for (let n = 0; n < nodes.length; n++) if (!down.has(n)) planIdle(n);
  }
  const summary = stats.summary();
  const upDevices = (nodes.length - down.size) * cfg.devicesPerNode;
  return {
    traces: [],
    summary,
    stopped: false,
    report: summaryReport(summary, lastArrivalMs),
    utilization: upDevices && now > 0 ? busyMs / (upDevices * now) : 0,
    switches,
    timeline,
    simulatedMs: now,
    routed,
    unrouted,
  };
}

/** A node's record as fleet/node.ts builds it from its scheduler, stamped `nowMs`. */
function recordOf(node: SimNode, nowMs: number, heartbeatMs: number): NodeRecord {
  const { devices, models } = poolRecord(node.scheduler, node.modelIds, nowMs);
  return { nodeId: node.id, url: `sim://${node.id}`, epoch: "sim", state: "READY", stampMs: nowMs, heartbeatMs, devices, models };
}
