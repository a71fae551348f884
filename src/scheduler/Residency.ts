/**
 * The residency mechanism: turns a policy's intent into the next command that brings it
 * closer — park other models' KV in the host tier, evict them, load the intent's model,
 * bring its KV back, then run the step itself. Each call returns only the first missing
 * command; the next plan derives the rest, so there is no multi-step plan to invalidate
 * when events arrive in between. Memory is reserved in the ledger when a command is issued,
 * so the ledger never promises what a running command may still need.
 */
import type { Command, DeviceId, ModelId, RequestId } from "../core/types.ts";
import type { AllocationKind } from "./MemoryLedger.ts";
import type { Intent } from "./intent.ts";
import type { Policy } from "./Policy.ts";
import type { DeviceState, RequestRecord, SchedulerState } from "./state.ts";
import { hasMissedSlo, kvKey, kvReservationBytes, modelsInUse, nextChunkTokens, nextTokenDeadlineMs, weightKey } from "./state.ts";

export class Residency {
  constructor(
    private readonly state: SchedulerState,
    /** Says which models may be evicted, and hears of every eviction. */
    private readonly policy: Policy,
    private readonly prefillChunkTokens: number,
  ) {}

  /**
   * The next command toward `intent` on the device, or null when memory blocks it (the
   * caller then tries the policy's next intent).
   */
  materialize(dev: DeviceState, intent: Intent, nowMs: number): Command | null {
    const deviceId = dev.profile.id;
    const modelId = intent.modelId;
    const model = this.state.models.get(modelId)!;
    const target = intent.kind === "prefill" ? [this.state.requests.get(intent.requestId)!] : intent.requestIds.map((id) => this.state.requests.get(id)!);
    const needKv = target.filter((r) => r.kv !== "device");
    const needKvBytes = needKv.reduce((s, r) => s + kvReservationBytes(model, r.spec), 0);
    const inIntent = new Set(target.map((r) => r.spec.id));

    if (!dev.resident.has(modelId)) {
      const limit = this.policy.maxResidentModels;
      const mustEvict = limit === undefined ? 0 : Math.max(0, dev.resident.size + 1 - limit);
      const room = this.makeRoom(dev, modelId, model.weightBytes + needKvBytes, nowMs, mustEvict);
      if (room === null) return null;
      if ("command" in room) return room.command;
      this.reserve(dev, weightKey(modelId), "weights", model.weightBytes);
      dev.resident.set(modelId, { ready: false, lastUsedMs: nowMs });
      this.countHolder(modelId, +1);
      return this.withRelease(dev, { kind: "load", deviceId, modelId, evict: room.evicted });
    }
    if (!dev.resident.get(modelId)!.ready) return null;

    // Slots: a model's context holds at most maxBatch sequences.
    const held = this.onDevice(deviceId, modelId);
    const over = held.length + needKv.length - model.maxBatch;
    if (over > 0) {
      // Park first who can no longer meet the SLO, then whose next token is due last.
      const victims = held
        .filter((r) => !inIntent.has(r.spec.id))
        .sort((a, b) => Number(hasMissedSlo(b, nowMs)) - Number(hasMissedSlo(a, nowMs)) || nextTokenDeadlineMs(b) - nextTokenDeadlineMs(a));
      if (victims.length < over) throw new Error(`intent for ${modelId} needs more than ${model.maxBatch} slots`);
      return this.swapOut(dev, modelId, victims.slice(0, over));
    }

    // KV memory for the requests coming onto the device.
    if (!dev.ledger.fits(needKvBytes)) {
      const room = this.makeRoom(dev, modelId, needKvBytes, nowMs);
      if (room === null) {
        // Never park one request of a model to make room for another of the same model: the
        // two would trade places forever. A decode step runs with the requests already here;
        // the others (and a new prompt) wait for memory that finishing requests free.
        const here = intent.kind === "decode" ? target.filter((r) => r.kv === "device") : [];
        if (here.length === 0 || intent.kind !== "decode") return null;
        return this.withRelease(dev, { kind: "decode", deviceId, modelId, requestIds: here.map((r) => r.spec.id), steps: intent.steps });
      }
      if ("command" in room) return room.command;
      if (room.evicted.length > 0) return this.withRelease(dev, { kind: "evict", deviceId, modelIds: room.evicted });
    }

    const parked = needKv.filter((r) => r.kv === "host");
    if (parked.length > 0) {
      for (const r of parked) {
        // KV in the host tier belongs to no device: a request parked by another device
        // resumes here and is bound here from now on.
        if (r.deviceId !== deviceId) {
          this.state.boundTo.get(r.deviceId!)!.delete(r);
          r.deviceId = deviceId;
          this.state.boundTo.get(deviceId)!.add(r);
        }
        this.reserve(dev, kvKey(r.spec.id), "kv", kvReservationBytes(model, r.spec));
        r.kv = "device";
        this.state.parked.delete(r);
      }
      return this.withRelease(dev, { kind: "swapIn", deviceId, modelId, requestIds: parked.map((r) => r.spec.id) });
    }

    if (intent.kind === "prefill") {
      // A waiting request is bound to the device by the scheduler once this command is issued.
      const r = target[0]!;
      if (r.kv === "none") {
        this.reserve(dev, kvKey(r.spec.id), "kv", kvReservationBytes(model, r.spec));
        r.kv = "device";
      }
      const from = r.prefilledTokens;
      const to = from + nextChunkTokens(r, this.prefillChunkTokens);
      return this.withRelease(dev, {
        kind: "prefill",
        deviceId,
        modelId,
        requestId: r.spec.id,
        fromToken: from,
        toToken: to,
        final: to === r.spec.promptTokens,
      });
    }
    return this.withRelease(dev, {
      kind: "decode",
      deviceId,
      modelId,
      requestIds: intent.requestIds,
      steps: intent.steps,
      ...(intent.interruptible ? { interruptible: true } : {}),
    });
  }

  /** A load completed: the model may run, and counts as just used. */
  loaded(dev: DeviceState, modelId: ModelId, nowMs: number): void {
    const r = dev.resident.get(modelId);
    if (r) {
      r.ready = true;
      r.lastUsedMs = nowMs;
    }
  }

  /** A step of the model ran: eviction takes the least recently used first. */
  touch(dev: DeviceState, modelId: ModelId, nowMs: number): void {
    const r = dev.resident.get(modelId);
    if (r) r.lastUsedMs = nowMs;
  }

  /** The device's worker died: nothing is resident on it any more. */
  lost(dev: DeviceState): void {
    for (const m of dev.resident.keys()) this.countHolder(m, -1);
    dev.resident.clear();
    dev.ledger.clear();
  }

  /**
   * Reserve memory that the checks before have made room for. A refusal here means the
   * mechanism's accounting is wrong, and a command issued anyway would run out of memory.
   */
  private reserve(dev: DeviceState, key: string, kind: AllocationKind, bytes: number): void {
    if (!dev.ledger.allocate(key, kind, bytes))
      throw new Error(
        `device ${dev.profile.id}: the ledger refused ${key} (${bytes} bytes, ${dev.ledger.freeBytes} free${dev.ledger.has(key) ? ", key already held" : ""}) after room was made for it`,
      );
  }

  private countHolder(modelId: ModelId, delta: number): void {
    const n = (this.state.holders.get(modelId) ?? 0) + delta;
    if (n > 0) this.state.holders.set(modelId, n);
    else this.state.holders.delete(modelId);
  }

  /** Every command carries the releases owed to its device, which drops them before it runs. */
  private withRelease<T extends Omit<Command, "release">>(dev: DeviceState, cmd: T): T & { release: RequestId[] } {
    const release = dev.pendingRelease;
    dev.pendingRelease = [];
    // Every caller passes a fresh literal: adding the field (last, as a spread would) spares a copy per command.
    return Object.assign(cmd, { release });
  }

  /** Requests of `modelId` on this device whose KV sits in a device slot. */
  private onDevice(deviceId: DeviceId, modelId: ModelId): RequestRecord[] {
    const out: RequestRecord[] = [];
    for (const r of this.state.boundTo.get(deviceId)!) if (r.spec.modelId === modelId && r.kv === "device") out.push(r);
    return out;
  }

  private swapOut(dev: DeviceState, modelId: ModelId, reqs: RequestRecord[]): Command {
    for (const r of reqs) {
      r.kv = "host";
      this.state.parked.add(r);
      dev.ledger.free(kvKey(r.spec.id));
    }
    return this.withRelease(dev, { kind: "swapOut", deviceId: dev.profile.id, modelId, requestIds: reqs.map((r) => r.spec.id) });
  }

  /**
   * Make `needBytes` free on the device without touching `keepModel`: first swap out the
   * device KV of the least recently used other model, then evict it. Returns the swap-out
   * command still needed, or the models evicted (already off the ledger), or null when
   * the policy allows no more eviction. `mustEvict` models go even if memory is free (the
   * policy's `maxResidentModels`).
   */
  private makeRoom(dev: DeviceState, keepModel: ModelId, needBytes: number, nowMs: number, mustEvict = 0): { command: Command } | { evicted: ModelId[] } | null {
    if (mustEvict === 0 && dev.ledger.fits(needBytes)) return { evicted: [] };
    const deviceId = dev.profile.id;
    // Models nobody on this device is using go first (nothing to park, nobody waiting to
    // come back), then the least recently used.
    const busy = modelsInUse(this.state, deviceId);
    const victims = [...dev.resident.entries()]
      .filter(([id, r]) => id !== keepModel && r.ready && this.policy.mayEvict(deviceId, id))
      .sort((a, b) => Number(busy.has(a[0])) - Number(busy.has(b[0])) || a[1].lastUsedMs - b[1].lastUsedMs || (a[0] < b[0] ? -1 : 1));
    let freed = 0;
    const evicted: ModelId[] = [];
    for (const [v] of victims) {
      if (dev.ledger.freeBytes + freed >= needBytes && evicted.length >= mustEvict) break;
      const parked = this.onDevice(deviceId, v);
      if (parked.length > 0) return { command: this.swapOut(dev, v, parked) };
      evicted.push(v);
      freed += this.state.models.get(v)!.weightBytes;
    }
    if (dev.ledger.freeBytes + freed < needBytes || evicted.length < mustEvict) return null;
    for (const v of evicted) {
      dev.ledger.free(weightKey(v));
      dev.resident.delete(v);
      this.countHolder(v, -1);
      this.policy.onEvicted?.(deviceId, v, nowMs);
    }
    return { evicted };
  }
}
