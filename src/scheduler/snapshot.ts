/**
 * What the scheduler holds, as plain data for metrics, the live page and the API: one pass
 * over the state, nothing kept.
 */
import type { Command, DeviceId, ModelId } from "../core/types.ts";
import type { SchedulerView } from "./state.ts";

export interface DeviceSnapshot {
  id: DeviceId;
  down: boolean;
  busy: Command["kind"] | null;
  residentModels: { modelId: ModelId; ready: boolean }[];
  memoryBytes: number;
  weightBytes: number;
  kvBytes: number;
}

export interface SchedulerSnapshot {
  devices: DeviceSnapshot[];
  waitingByModel: Record<ModelId, number>;
  runningByModel: Record<ModelId, number>;
  hostKvRequests: number;
}

export function snapshot(view: SchedulerView): SchedulerSnapshot {
  const waitingByModel: Record<ModelId, number> = {};
  const runningByModel: Record<ModelId, number> = {};
  for (const m of view.models.keys()) {
    waitingByModel[m] = 0;
    runningByModel[m] = 0;
  }
  for (const r of view.requests.values()) {
    if (r.phase === "queued") waitingByModel[r.spec.modelId]!++;
    else runningByModel[r.spec.modelId]!++;
  }
  const devices = [...view.devices.values()].map((d) => ({
    id: d.profile.id,
    down: d.down,
    busy: d.running?.kind ?? null,
    residentModels: [...d.resident.entries()].map(([modelId, r]) => ({ modelId, ready: r.ready })),
    memoryBytes: d.ledger.capacityBytes,
    weightBytes: d.ledger.bytesOf("weights"),
    kvBytes: d.ledger.bytesOf("kv"),
  }));
  return { devices, waitingByModel, runningByModel, hostKvRequests: view.parked.size };
}
