/**
 * What every idle device's plan in one round shares, derived once per state and time instead
 * of once per device. A driver plans each idle device after every event (the simulator: ~30
 * idle devices per event on 64, 98% of them finding nothing to take); the state changes only
 * through the scheduler's events and its issued commands, each of which moves the view's
 * `version`, so what a policy derives from (version, time) holds for the whole round.
 */
import type { ModelId } from "../core/types.ts";
import type { SchedulerView, WaitingGroup } from "./state.ts";

export class PerRound<T> {
  private version = -1;
  private nowMs = Number.NaN;
  private value: T | undefined;

  /** `derive` must read nothing but the view and the time. */
  constructor(private readonly derive: (view: SchedulerView, nowMs: number) => T) {}

  get(view: SchedulerView, nowMs: number): T {
    if (view.version !== this.version || nowMs !== this.nowMs) {
      this.value = this.derive(view, nowMs);
      this.version = view.version;
      this.nowMs = nowMs;
    }
    return this.value!;
  }
}

/** The waiting groups as the idle devices of a round see them. */
export interface WaitingFacts {
  /** Models with requests waiting. */
  models: ReadonlySet<ModelId>;
  /**
   * Some group might be taken by a device that does not hold its model (the policy's own
   * test, leaving out what depends on the device). False: only devices that hold a waiting
   * model can take anything.
   */
  open: boolean;
}

/** Models with waiting groups, and whether any group passes `open` (a conservative test: true may be wrong, false never). */
export function waitingFacts(view: SchedulerView, open: (g: WaitingGroup) => boolean): WaitingFacts {
  const models = new Set<ModelId>();
  let anyOpen = false;
  for (const g of view.groups) {
    models.add(g.modelId);
    if (!anyOpen && open(g)) anyOpen = true;
  }
  return { models, open: anyOpen };
}

/**
 * Nothing waits that this device could take, by the facts of the round: nothing is bound to
 * it, nothing parked, no group is open, and it holds none of the waiting models. (Whether a
 * device that holds nothing bound can take a group depends only on those.)
 */
export function nothingToTake(view: SchedulerView, deviceId: string, facts: WaitingFacts): boolean {
  if (facts.open || view.parked.size > 0 || view.boundTo.get(deviceId)!.size > 0) return false;
  for (const m of view.devices.get(deviceId)!.resident.keys()) if (facts.models.has(m)) return false;
  return true;
}
