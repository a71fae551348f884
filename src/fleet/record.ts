/**
 * A node's record in Redis: what a node publishes and what routers read. Plain data, shared
 * by the node (writes it), the router and `pitcher fleet` (read it) and the routing function.
 * All times are on Redis's clock (`TIME`), so nodes' and routers' own clocks never meet.
 */
import type { ModelId } from "../core/types.ts";

/** Where records live: one string key per node (with a TTL), and a set naming the nodes. */
export const KEY_PREFIX = "pitcher:";
export const NODES_SET = `${KEY_PREFIX}nodes`;
export const EVENTS_CHANNEL = `${KEY_PREFIX}events`;
export const nodeKey = (nodeId: string): string => `${KEY_PREFIX}node:${nodeId}`;

export type NodeState = "READY" | "DRAINING";

/** One model on one node. */
export interface ModelRecord {
  /** Ready on some device, being loaded, or on none. */
  state: "resident" | "loading" | "absent";
  queued: number;
  running: number;
  /** The node scheduler's predicted wait for a new request of this model, a load included where none holds it (ms). */
  waitMs: number;
  /** The predicted time to load it (ms). */
  loadMs: number;
  /** Its weights' size: whether a load fits in a device's free memory or must evict a model. Absent in older records. */
  weightBytes?: number;
  /** Roughly what one request of this model adds to that wait when none of it runs (ms): its prefill and a decode of its own. */
  requestMs: number;
  /**
   * What one more request adds once the model has requests running or queued here (ms): its
   * prefill and its share of the larger decode steps, for it joins their batch. Absent in
   * records of older nodes (then `requestMs`).
   */
  joinMs?: number;
  /** Over the node's last minute: requests scored against their SLO, and those that met it (a dashboard's figures; absent in the simulator). */
  scored?: number;
  met?: number;
}

export interface DeviceRecord {
  id: string;
  up: boolean;
  memoryBytes: number;
  freeBytes: number;
  residents: ModelId[];
}

export interface NodeRecord {
  /** `host:port` of the advertised address: stable across restarts, so a restarted node replaces its record. */
  nodeId: string;
  /** Where routers reach it, e.g. http://10.0.0.5:8080. */
  url: string;
  /** Per start of the process: a record with a new epoch is a new life of the node. */
  epoch: string;
  state: NodeState;
  /** When Redis stamped the record (Redis clock, ms). */
  stampMs: number;
  /** How often the node rewrites it (ms); records older than 2.5 of these are stale. */
  heartbeatMs: number;
  devices: DeviceRecord[];
  models: Record<ModelId, ModelRecord>;
}

/** A stored record, or null when it is not one (a foreign key, a newer format): such a node is ignored. */
export function parseRecord(text: string | null): NodeRecord | null {
  if (!text) return null;
  try {
    const r = JSON.parse(text) as NodeRecord;
    if (typeof r.nodeId !== "string" || typeof r.url !== "string" || typeof r.stampMs !== "number" || typeof r.models !== "object") return null;
    return r;
  } catch {
    return null;
  }
}

/** What a record reads of a scheduler's snapshot. */
export interface PoolSnapshot {
  devices: { id: string; down: boolean; memoryBytes: number; weightBytes: number; kvBytes: number; residentModels: { modelId: ModelId; ready: boolean }[] }[];
  waitingByModel: Record<ModelId, number>;
  runningByModel: Record<ModelId, number>;
}

/** The node's scheduler, as far as a record reads it (structurally: record.ts imports only core). */
export interface RecordedScheduler {
  snapshot(): PoolSnapshot;
  models: ReadonlyMap<ModelId, { weightBytes: number }>;
  predictedWaitMs(modelId: ModelId, nowMs: number, promptTokens: number): number;
  predictor: { loadMs(modelId: ModelId): number; prefillMs(modelId: ModelId, tokens: number): number; decodeStepMs(modelId: ModelId, batch: number): number };
}

/** A request of this size prices `waitMs` and `requestMs`: a router knows nothing of its requests' lengths. */
const TYPICAL_PROMPT_TOKENS = 32;
const TYPICAL_OUTPUT_TOKENS = 64;

/**
 * A record's devices and models from the node's scheduler: built the same way by a fleet
 * node (`node.ts`) and by the simulator's nodes (`sim/fleetSimulation.ts`).
 */
export function poolRecord(scheduler: RecordedScheduler, modelIds: Iterable<ModelId>, nowMs: number): Pick<NodeRecord, "devices" | "models"> {
  const snap = scheduler.snapshot();
  const p = scheduler.predictor;
  const upDevices = snap.devices.filter((d) => !d.down);
  const models: Record<ModelId, ModelRecord> = {};
  for (const id of modelIds) {
    const holders = upDevices.flatMap((d) => d.residentModels.filter((r) => r.modelId === id));
    const running = snap.runningByModel[id] ?? 0;
    const perDevice = (ms: number) => Math.round(ms / Math.max(1, upDevices.length));
    const batch = Math.max(1, running);
    models[id] = {
      state: holders.some((r) => r.ready) ? "resident" : holders.length > 0 ? "loading" : "absent",
      queued: snap.waitingByModel[id] ?? 0,
      running,
      waitMs: Math.round(scheduler.predictedWaitMs(id, nowMs, TYPICAL_PROMPT_TOKENS)),
      loadMs: Math.round(p.loadMs(id)),
      weightBytes: scheduler.models.get(id)?.weightBytes ?? 0,
      requestMs: perDevice(p.prefillMs(id, TYPICAL_PROMPT_TOKENS) + p.decodeStepMs(id, 1) * TYPICAL_OUTPUT_TOKENS),
      joinMs: perDevice(p.prefillMs(id, TYPICAL_PROMPT_TOKENS) + Math.max(0, p.decodeStepMs(id, batch + 1) - p.decodeStepMs(id, batch)) * TYPICAL_OUTPUT_TOKENS),
    };
  }
  const devices = snap.devices.map((d) => ({
    id: d.id,
    up: !d.down,
    memoryBytes: d.memoryBytes,
    freeBytes: Math.max(0, d.memoryBytes - d.weightBytes - d.kvBytes),
    residents: d.residentModels.map((r) => r.modelId),
  }));
  return { devices, models };
}
