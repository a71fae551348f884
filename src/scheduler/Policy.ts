/**
 * What a scheduling policy is, and the registry the scheduler finds policies in.
 *
 * A policy decides what work a device should do next; the residency mechanism
 * (Residency.ts) decides how to make room for it. A policy reads the scheduler's state, never
 * writes it, and keeps whatever it remembers between plans (turns, round-robin pointers) in
 * its own object: one per scheduler, made by the factory it registered. Adding a policy is
 * one file that calls `registerPolicy` and one import line in Scheduler.ts.
 */
import type { Command, DeviceId, ModelId } from "../core/types.ts";
import type { Intent } from "./intent.ts";
import type { SchedulerOptions } from "./options.ts";
import type { Predictor } from "./Predictor.ts";
import type { SchedulerView, WaitingGroup } from "./state.ts";

/** What a policy is given when a scheduler creates it. */
export interface PolicyContext {
  readonly view: SchedulerView;
  readonly predictor: Predictor;
  readonly options: Readonly<SchedulerOptions>;
}

export interface Policy {
  /**
   * What the idle device should run, in order of preference, before memory is considered.
   * The mechanism runs the first intent it can bring closer; a blocked one must not stall
   * the others.
   */
  plan(deviceId: DeviceId, nowMs: number): Intent[];
  /**
   * At most this many models resident on a device: loading one more evicts the least
   * recently used first even when memory would hold both (one model per device, as
   * ServerlessLLM runs). Absent: as many as memory holds.
   */
  readonly maxResidentModels?: number;
  /** May the mechanism evict this model from the device now to make room? */
  mayEvict(deviceId: DeviceId, modelId: ModelId): boolean;
  /** The command the device was given by this plan: one of the intents, or a step toward it. */
  onIssued?(deviceId: DeviceId, command: Command, nowMs: number): void;
  /** The mechanism evicted a model from the device to make room for an intent. */
  onEvicted?(deviceId: DeviceId, modelId: ModelId, nowMs: number): void;
  /** The device's worker died: its memory is gone, and so is anything planned around it. */
  onDeviceFailed?(deviceId: DeviceId, nowMs: number): void;
  /**
   * Optional fast answer for idle devices (perRound.ts): might a device that does not hold
   * the group's model, with nothing bound to it, take the group now? True when unsure; false
   * only where `plan` would leave the group to others. With it, the scheduler answers an idle
   * device that holds no waiting model, has nothing bound and sees nothing parked or open
   * without calling `plan`, and tells the policy through `onNothingToTake`.
   */
  openToOthers?(group: WaitingGroup, nowMs: number): boolean;
  /** The device took nothing, as `plan` returning no intents would have said (forget its turn). */
  onNothingToTake?(deviceId: DeviceId, nowMs: number): void;
}

export type PolicyFactory = (context: PolicyContext) => Policy;

const factories = new Map<string, PolicyFactory>();

/** Make a policy available under `name` to every scheduler created from now on. */
export function registerPolicy(name: string, factory: PolicyFactory): void {
  if (factories.has(name)) throw new Error(`scheduler policy '${name}' is registered twice`);
  factories.set(name, factory);
}

/** Names of the registered policies, in registration order. */
export function policyNames(): string[] {
  return [...factories.keys()];
}

export function createPolicy(name: string, context: PolicyContext): Policy {
  const factory = factories.get(name);
  if (!factory) throw new Error(`unknown scheduler policy '${name}' (known: ${policyNames().join(", ")})`);
  return factory(context);
}
