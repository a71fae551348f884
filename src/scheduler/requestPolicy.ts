/**
 * `request` policy: the baseline of Ollama, llama-swap and the llama.cpp router. A request
 * keeps its model resident until it finishes; models swap only between requests. Waiting
 * requests for a resident model start at once (up to its slots); a request for a model
 * that is not resident waits in one FIFO and may load its model only where an idle model
 * (no running requests) can be evicted, least recently used first. A model whose oldest
 * waiting request has waited `scaleOutWaitFraction` of its TTFT target gets a second copy
 * (scale-out, as ServerlessLLM and every peer that swaps models do). A device reserved for
 * one model (dedicated placement, `allowedModels`) loads it as soon as a request waits.
 *
 * The `serverless` policy (serverlessPolicy.ts) is this one with one model per device.
 */
import type { Command, DeviceId, ModelId } from "../core/types.ts";
import type { Intent } from "./intent.ts";
import { registerPolicy, type Policy, type PolicyContext } from "./Policy.ts";
import { mayServe, modelsInUse, type DeviceState, type RequestRecord, type SchedulerView, type WaitingGroup } from "./state.ts";
import { decodeSteps } from "./steps.ts";

/** What the policy remembers of a device between plans. */
interface Rotation {
  /** Alternate prefill and decode so neither starves. */
  lastWasPrefill: boolean;
  /** Round-robin pointer over the models decoding on the device. */
  rrIndex: number;
}

export interface RequestPolicyVariant {
  /** One model resident per device: a device switches models only when it has no running request. */
  oneModelPerDevice: boolean;
}

export class RequestPolicy implements Policy {
  private readonly devices = new Map<DeviceId, Rotation>();
  readonly maxResidentModels?: number;

  constructor(
    private readonly context: PolicyContext,
    private readonly variant: RequestPolicyVariant = { oneModelPerDevice: false },
  ) {
    if (variant.oneModelPerDevice) this.maxResidentModels = 1;
  }

  plan(deviceId: DeviceId, nowMs: number): Intent[] {
    return planRequestIntents(this.context, deviceId, this.device(deviceId), nowMs, this.variant);
  }

  /** A model with running requests stays: nothing is ever swapped out. */
  mayEvict(deviceId: DeviceId, modelId: ModelId): boolean {
    return isIdleOn(this.context.view, deviceId, modelId);
  }

  /**
   * A device that does not hold the model loads it for a head of the line whose model no
   * device holds, or that has waited long enough for a second copy (scale-out).
   */
  openToOthers(group: WaitingGroup, nowMs: number): boolean {
    const { view, options } = this.context;
    if (!view.holders.has(group.modelId)) return true;
    const first = view.requests.get(group.requestIds[0]!)!;
    return nowMs - first.spec.arrivalMs >= options.scaleOutWaitFraction * first.slo.ttftMs;
  }

  onIssued(deviceId: DeviceId, command: Command): void {
    const d = this.device(deviceId);
    if (command.kind === "prefill") d.lastWasPrefill = true;
    if (command.kind === "decode") {
      d.lastWasPrefill = false;
      d.rrIndex++;
    }
  }

  private device(deviceId: DeviceId): Rotation {
    let d = this.devices.get(deviceId);
    if (!d) {
      d = { lastWasPrefill: false, rrIndex: 0 };
      this.devices.set(deviceId, d);
    }
    return d;
  }
}

registerPolicy("request", (context) => new RequestPolicy(context));

/** A model is idle on a device when none of the device's requests use it. */
function isIdleOn(view: SchedulerView, deviceId: DeviceId, modelId: ModelId): boolean {
  return !modelsInUse(view, deviceId).has(modelId);
}

/**
 * Another live device holds the model ready, is idle now (it is planned in the same round)
 * and runs fewer of its requests: leave the waiting request to it, so copies share the load.
 */
function lessLoadedIdleCopy(view: SchedulerView, dev: DeviceState, modelId: ModelId, mine: number): boolean {
  if ((view.holders.get(modelId) ?? 0) < 2) return false;
  for (const d of view.devices.values()) {
    if (d === dev || d.down || d.running || !d.resident.get(modelId)?.ready) continue;
    let theirs = 0;
    for (const r of view.boundTo.get(d.profile.id)!) if (r.spec.modelId === modelId) theirs++;
    if (theirs < mine) return true;
  }
  return false;
}

/** Every copy of the model that is resident somewhere has finished loading. */
function noCopyLoading(view: SchedulerView, modelId: ModelId): boolean {
  for (const d of view.devices.values()) if (!d.down && d.resident.get(modelId)?.ready === false) return false;
  return true;
}

/** Intents in order of preference; the scheduler runs the first one memory allows. */
function planRequestIntents({ view, predictor, options }: PolicyContext, deviceId: DeviceId, turns: Rotation, nowMs: number, variant: RequestPolicyVariant): Intent[] {
  const dev = view.devices.get(deviceId)!;
  // One pass over the device's requests (in admission order): how many per model, the first
  // one prefilling, and each model's decoding ones. Plans run after every event; copying and
  // filtering the bound requests per model was most of the policy's time.
  const boundCount = new Map<string, number>();
  const decoding = new Map<string, RequestRecord[]>();
  let prefilling: RequestRecord | undefined;
  for (const b of view.boundTo.get(deviceId)!) {
    const m = b.spec.modelId;
    boundCount.set(m, (boundCount.get(m) ?? 0) + 1);
    if (b.phase === "prefilling") prefilling ??= b;
    else if (b.phase === "decoding") {
      const list = decoding.get(m);
      if (list) list.push(b);
      else decoding.set(m, [b]);
    }
  }

  // Admission in FIFO order: resident models start at once; the first request whose model
  // is resident nowhere, or has waited long enough for a second copy, or is this dedicated
  // device's model, may load it here (the residency mechanism evicts only idle models).
  // Only each model's oldest waiting request can be next for that model: walk those heads in
  // FIFO order (one per model, so a long queue costs nothing extra).
  const heads = new Map<string, RequestRecord>();
  for (const g of view.groups) {
    const r = view.requests.get(g.requestIds[0]!)!;
    const h = heads.get(g.modelId);
    if (!h || r.seq < h.seq) heads.set(g.modelId, r);
  }
  const waiting = [...heads.values()].sort((a, b) => a.seq - b.seq);
  let admit: RequestRecord | undefined;
  let headOfFifoSeen = false;
  for (const r of waiting) {
    const m = r.spec.modelId;
    if (!mayServe(dev, m)) continue;
    const here = dev.resident.get(m);
    if (here) {
      const slots = view.models.get(m)!.maxBatch;
      const mine = boundCount.get(m) ?? 0;
      if (mine < slots && !lessLoadedIdleCopy(view, dev, m, mine)) {
        admit = r;
        break;
      }
      continue;
    }
    const elsewhere = (view.holders.get(m) ?? 0) > 0;
    const reserved = dev.profile.allowedModels !== undefined;
    const scaleOut = nowMs - r.spec.arrivalMs >= options.scaleOutWaitFraction * r.slo.ttftMs && noCopyLoading(view, m);
    if ((elsewhere && !reserved && !scaleOut) || headOfFifoSeen) continue;
    headOfFifoSeen = true;
    // Only a model nobody here is using may make room; one model per device switches only
    // when the device has nothing running.
    const canMakeRoom = variant.oneModelPerDevice ? boundCount.size === 0 : dev.ledger.fits(view.models.get(m)!.weightBytes) || holdsIdleModel(dev, boundCount);
    if (canMakeRoom) {
      admit = r;
      break;
    }
  }

  const decodeModels = [...decoding.keys()].sort();

  const wantPrefill = prefilling ?? admit;
  const decodes: Intent[] = [];
  for (let k = 0; k < decodeModels.length; k++) {
    const modelId = decodeModels[(turns.rrIndex + k) % decodeModels.length]!;
    const batch = decoding.get(modelId)!.slice(0, view.models.get(modelId)!.maxBatch);
    // One step at a time while prompts wait or other models share the device (continuous batching).
    const cap = wantPrefill || decodeModels.length > 1 ? 1 : Infinity;
    const steps = decodeSteps(batch, predictor.decodeStepMs(modelId, batch.length), options.decodeSliceMs, cap);
    decodes.push({ kind: "decode", modelId, requestIds: batch.map((r) => r.spec.id), steps });
  }
  const prefill: Intent[] = wantPrefill ? [{ kind: "prefill", modelId: wantPrefill.spec.modelId, requestId: wantPrefill.spec.id }] : [];
  const preferPrefill = !turns.lastWasPrefill || decodes.length === 0;
  return preferPrefill ? [...prefill, ...decodes] : [...decodes, ...prefill];
}

/** The device holds a model none of its requests uses (the mechanism may evict it). */
function holdsIdleModel(dev: DeviceState, boundCount: ReadonlyMap<string, number>): boolean {
  for (const x of dev.resident.keys()) if (!boundCount.has(x)) return true;
  return false;
}
