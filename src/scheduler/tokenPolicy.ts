/**
 * `token` policy: token-level pooling (see DESIGN.md beside this file).
 *
 * A device works in turns, one model per turn. Within a turn it picks, earliest deadline
 * first, between a prefill chunk of that model's waiting requests (grouped FCFS) and a
 * decode step of that model's batch. A turn lasts at least its round-robin quota (the
 * reference design's formula) and is extended while no other model's work on the device
 * is close to its deadline; then the next turn goes to the model whose work must start
 * soonest, counting the switch it needs.
 *
 * Three parts: which work a device sees (eligibility.ts), turns (turns.ts) and the intents
 * within a turn (turnIntents.ts). This file holds what the policy remembers: each device's
 * turn.
 */
import type { DeviceId, ModelId } from "../core/types.ts";
import { deviceWork, openToOthers } from "./eligibility.ts";
import type { Intent } from "./intent.ts";
import type { WaitingGroup } from "./state.ts";
import { registerPolicy, type Policy, type PolicyContext } from "./Policy.ts";
import { turnIntents, type TurnIntentOptions } from "./turnIntents.ts";
import { currentTurn, type Turn } from "./turns.ts";

export class TokenPolicy implements Policy {
  private readonly turns = new Map<DeviceId, Turn>();
  private readonly intentOptions: TurnIntentOptions;

  constructor(private readonly context: PolicyContext) {
    const o = context.options;
    this.intentOptions = {
      decodeSliceMs: o.decodeSliceMs,
      idleDecodeSliceMs: o.idleDecodeSliceMs ?? o.decodeSliceMs,
      prefillChunkTokens: o.prefillChunkTokens,
    };
  }

  plan(deviceId: DeviceId, nowMs: number): Intent[] {
    const { view, predictor, options } = this.context;
    const seen = deviceWork(view, predictor, deviceId, nowMs, options.maxGroupSize);
    if (!seen) {
      this.turns.delete(deviceId);
      return [];
    }
    const turn = currentTurn(seen, this.turns.get(deviceId) ?? null, options.maxQuotaMs);
    this.turns.set(deviceId, turn);
    return turnIntents(seen, turn, this.intentOptions);
  }

  openToOthers(group: WaitingGroup, nowMs: number): boolean {
    return openToOthers(this.context.view, group, nowMs, this.context.options.maxGroupSize);
  }

  onNothingToTake(deviceId: DeviceId): void {
    this.turns.delete(deviceId);
  }

  /**
   * Any model may go: the mechanism parks its requests' KV in the host tier first, and the
   * turn choice has already weighed what preempting them costs.
   */
  mayEvict(): boolean {
    return true;
  }

  /** A turn whose model left the device is over. */
  onEvicted(deviceId: DeviceId, modelId: ModelId): void {
    if (this.turns.get(deviceId)?.modelId === modelId) this.turns.delete(deviceId);
  }

  onDeviceFailed(deviceId: DeviceId): void {
    this.turns.delete(deviceId);
  }
}

registerPolicy("token", (context) => new TokenPolicy(context));
