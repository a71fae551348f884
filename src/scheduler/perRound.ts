/**
 * Idle devices with nothing to take, answered from what one round of plans shares instead of
 * per device. A driver plans every idle device after every event (the simulator: ~30 idle
 * devices per event on 64, 98% of them finding nothing). The state changes only through the
 * scheduler's events and its issued commands, each of which moves the view's `version`, so
 * what is derived from (version, time) holds for the whole round.
 *
 * A device with nothing bound to it, while nothing is parked, can take only a waiting group
 * of a model it holds, or a group the policy's `openToOthers` lets a non-holder take. When it
 * has neither, its plan returns nothing: the scheduler answers so without asking the policy
 * (which hears `onNothingToTake`), and the device is **asleep**. Nothing an asleep device's
 * plan reads can change without a plan of its own (requests are bound to a device, and models
 * loaded or evicted on it, only by its plans; a failure wakes it), except the waiting groups
 * and the parked requests: so it stays asleep, and a driver may skip it (`mayTakeWork`),
 * until some group is open, a request is parked, or a model it holds has requests waiting.
 */
import type { DeviceId, ModelId } from "../core/types.ts";
import type { DeviceState, SchedulerView, WaitingGroup } from "./state.ts";

interface Round {
  version: number;
  nowMs: number;
  /** Models with requests waiting. */
  models: Set<ModelId>;
  /** Some group might be taken by a device that does not hold its model. */
  open: boolean;
  /** Some asleep device may have work now (then every asleep device is planned). */
  wakes: boolean;
}

export class QuietDevices {
  private readonly asleep = new Set<DeviceId>();
  /** How many asleep devices hold each model. */
  private readonly heldAsleep = new Map<ModelId, number>();
  private round: Round = { version: -1, nowMs: Number.NaN, models: new Set(), open: false, wakes: true };

  constructor(
    private readonly view: SchedulerView,
    /** The policy's test (conservative: true when unsure, never false when a non-holder might take the group). */
    private readonly openToOthers: (g: WaitingGroup, nowMs: number) => boolean,
  ) {}

  /**
   * The idle device can take nothing now (plan's fast answer); it is asleep from now on.
   * Otherwise it is awake, and its plan asks the policy.
   */
  nothingToTake(dev: DeviceState, nowMs: number): boolean {
    const id = dev.profile.id;
    const r = this.current(nowMs);
    let none = !r.open && this.view.parked.size === 0 && dev.profile.allowedModels === undefined && this.view.boundTo.get(id)!.size === 0;
    if (none) for (const m of dev.resident.keys()) if (r.models.has(m)) none = false;
    if (none) {
      if (!this.asleep.has(id)) {
        this.asleep.add(id);
        for (const m of dev.resident.keys()) this.heldAsleep.set(m, (this.heldAsleep.get(m) ?? 0) + 1);
        // A device that falls asleep holding a model nobody waits for changes no round's `wakes`.
      }
    } else this.wake(dev);
    return none;
  }

  /** The device is awake: planned the long way, or failed. */
  wake(dev: DeviceState): void {
    const id = dev.profile.id;
    if (!this.asleep.delete(id)) return;
    for (const m of dev.resident.keys()) {
      const n = this.heldAsleep.get(m)! - 1;
      if (n > 0) this.heldAsleep.set(m, n);
      else this.heldAsleep.delete(m);
    }
  }

  /** False: the device is asleep and stays so this round; planning it would return null and change nothing. */
  mayTakeWork(deviceId: DeviceId, nowMs: number): boolean {
    return !this.asleep.has(deviceId) || this.current(nowMs).wakes;
  }

  private current(nowMs: number): Round {
    const view = this.view;
    if (this.round.version === view.version && this.round.nowMs === nowMs) return this.round;
    const models = new Set<ModelId>();
    let open = false;
    let heldByAsleep = false;
    for (const g of view.groups) {
      if (!models.has(g.modelId)) {
        models.add(g.modelId);
        if (this.heldAsleep.has(g.modelId)) heldByAsleep = true;
      }
      if (!open && this.openToOthers(g, nowMs)) open = true;
    }
    this.round = { version: view.version, nowMs, models, open, wakes: open || heldByAsleep || view.parked.size > 0 };
    return this.round;
  }
}
