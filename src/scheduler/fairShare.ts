/**
 * Fair sharing of the pool between tenants (DESIGN.md, "Fair sharing"). Each tenant has a
 * virtual time: the device time its requests used, divided by its weight. A request's
 * predicted device time (prefill plus its output at a full batch's per-sequence cost) is
 * charged when it starts, so a tenant cannot start a burst before its bill arrives; when it
 * ends, the charge is corrected to the device time its commands really took.
 *
 * While two or more tenants have live requests and one is a window ahead of another, the
 * one ahead *yields*: its work sets no deadline while the other's runs (policies order it
 * after on-time work, as they do late work); and while the other also has requests waiting,
 * its own waiting requests are *held*: left out of what devices see, so its backlog cannot
 * stand in front of the other's requests. Tenants that are all backlogged so share device
 * time in proportion to their weights. A tenant that had nothing live joins at most a
 * window behind the others (it banks no credit while idle, and it does not start behind a
 * flood either). With one tenant nothing ever yields or is held, so the scheduler decides
 * exactly as it would without this file.
 *
 * Pure bookkeeping: the scheduler calls it at submit, bind, each command's end and end.
 */
import type { Command, ModelId, ModelProfile, RequestId, RequestSpec, TenantRef } from "../core/types.ts";
import type { Predictor } from "./Predictor.ts";
import type { FairShareView, RequestRecord } from "./state.ts";

/** The default tenant of requests that name none. */
export const DEFAULT_TENANT: TenantRef = { id: "", weight: 1 };

interface TenantState {
  weight: number;
  /** Device time used (charged at start, corrected at end) divided by the weight. */
  virtualMs: number;
  /** Live requests: waiting or started. */
  live: number;
  waiting: number;
}

interface Charge {
  tenant: TenantState;
  /** Predicted device time, charged when the request started. */
  predictedMs: number;
  /** Device time its commands took so far. */
  usedMs: number;
  started: boolean;
}

export class FairShare implements FairShareView {
  private readonly tenants = new Map<string, TenantState>();
  private readonly charges = new Map<RequestId, Charge>();
  /** Tenants with live requests; fair sharing matters only when two or more are. */
  private liveTenants = 0;

  constructor(
    private readonly models: ReadonlyMap<ModelId, ModelProfile>,
    private readonly predictor: Predictor,
    /** How far (virtual ms) a tenant may run ahead of another live one before it yields. */
    private readonly windowMs: number,
  ) {}

  get contended(): boolean {
    if (this.liveTenants < 2) return false;
    let lo = Infinity;
    let hi = -Infinity;
    for (const t of this.tenants.values())
      if (t.live > 0) {
        lo = Math.min(lo, t.virtualMs);
        hi = Math.max(hi, t.virtualMs);
      }
    return hi >= lo + this.windowMs;
  }

  yields(r: RequestRecord): boolean {
    return this.ahead(r, (t) => t.live > 0);
  }

  held(r: RequestRecord): boolean {
    return this.ahead(r, (t) => t.waiting > 0);
  }

  private ahead(r: RequestRecord, of: (t: TenantState) => boolean): boolean {
    if (this.liveTenants < 2) return false;
    const mine = this.charges.get(r.spec.id)?.tenant;
    if (!mine) return false;
    for (const t of this.tenants.values()) if (t !== mine && of(t) && mine.virtualMs >= t.virtualMs + this.windowMs) return true;
    return false;
  }

  /**
   * Whether a waiting request of `other` starts before a new request of `tenant` would
   * (admission's predicted wait counts only those): a request of a tenant a window ahead waits.
   */
  startsBefore(tenant: TenantRef | undefined, other: RequestRecord): boolean {
    const mine = this.tenants.get((tenant ?? DEFAULT_TENANT).id);
    const theirs = this.charges.get(other.spec.id)?.tenant;
    if (!theirs || theirs === mine) return true;
    return theirs.virtualMs < this.joiningVirtualMs(mine) + this.windowMs;
  }

  submitted(r: RequestRecord): void {
    const ref = r.spec.tenant ?? DEFAULT_TENANT;
    let t = this.tenants.get(ref.id);
    if (!t) {
      t = { weight: ref.weight, virtualMs: 0, live: 0, waiting: 0 };
      this.tenants.set(ref.id, t);
    }
    // The weight is the latest request's (a key's weight may change with the configuration).
    t.weight = ref.weight > 0 ? ref.weight : 1;
    t.virtualMs = this.joiningVirtualMs(t);
    if (t.live++ === 0) this.liveTenants++;
    t.waiting++;
    this.charges.set(r.spec.id, { tenant: t, predictedMs: 0, usedMs: 0, started: false });
  }

  started(r: RequestRecord): void {
    const c = this.charges.get(r.spec.id);
    if (!c || c.started) return;
    c.started = true;
    c.tenant.waiting--;
    c.predictedMs = this.predictedMs(r.spec);
    c.tenant.virtualMs += c.predictedMs / c.tenant.weight;
  }

  /** Device time one of the request's commands took (its share of a batch). */
  private used(requestId: RequestId, ms: number): void {
    const c = this.charges.get(requestId);
    if (c) c.usedMs += ms;
  }

  /** A command ended after `durationMs`: its requests share it (loads and evictions are nobody's). */
  charge(cmd: Command, durationMs: number): void {
    if (cmd.kind === "prefill") this.used(cmd.requestId, durationMs);
    else if (cmd.kind === "decode" || cmd.kind === "swapIn" || cmd.kind === "swapOut") for (const id of cmd.requestIds) this.used(id, durationMs / cmd.requestIds.length);
  }

  ended(requestId: RequestId): void {
    const c = this.charges.get(requestId);
    if (!c) return;
    this.charges.delete(requestId);
    const t = c.tenant;
    if (c.started) t.virtualMs += (c.usedMs - c.predictedMs) / t.weight;
    else t.waiting--;
    if (--t.live === 0) this.liveTenants--;
  }

  /** Virtual times per tenant (tests and the snapshot). */
  virtualTimes(): Map<string, number> {
    return new Map([...this.tenants].map(([id, t]) => [id, t.virtualMs]));
  }

  /** A tenant with nothing live joins no further than a window behind the least-served live tenant. */
  private joiningVirtualMs(t: TenantState | undefined): number {
    let floor = Infinity;
    for (const o of this.tenants.values()) if (o !== t && o.live > 0) floor = Math.min(floor, o.virtualMs);
    if (!t) return floor === Infinity ? 0 : floor - this.windowMs;
    if (t.live > 0 || floor === Infinity) return t.virtualMs;
    return Math.max(t.virtualMs, floor - this.windowMs);
  }

  /** Device time the request is predicted to take: its prompt, and its output at a full batch's per-sequence step. */
  private predictedMs(spec: RequestSpec): number {
    const batch = this.models.get(spec.modelId)!.maxBatch;
    return this.predictor.prefillMs(spec.modelId, spec.promptTokens) + (spec.maxOutputTokens * this.predictor.decodeStepMs(spec.modelId, batch)) / batch;
  }
}
