/**
 * The scheduler's settings and their defaults. The server's configuration file has its own
 * defaults (config/schema.ts) and the simulator its own (sim/Simulation.ts); DESIGN.md lists
 * where they differ.
 */
import { DEFAULT_MAX_QUOTA_MS } from "./quota.ts";

export interface SchedulerOptions {
  /** A registered policy (`policyNames()`): `token` or `request` unless more are registered. */
  policy: string;
  /** Longest prompt slice evaluated in one command (bounds how long a device is blocked). */
  prefillChunkTokens: number;
  /** Requests of one model that wait and prefill together. */
  maxGroupSize: number;
  /** Longest turn of one model while others wait (Q_max). */
  maxQuotaMs: number;
  /**
   * Longest run of back-to-back decode steps in one command. Longer runs save a round trip
   * per token; shorter ones let new work in sooner.
   */
  decodeSliceMs: number;
  /**
   * Decode run when nothing else waits for the device (no other work, no waiting request):
   * the command is marked interruptible and the driver ends it when work arrives. Equal to
   * `decodeSliceMs` when the driver cannot interrupt (the simulator).
   */
  idleDecodeSliceMs?: number;
  /**
   * Request-level policies (`request`, `serverless`): a device loads a second copy of a model
   * already resident elsewhere once that model's oldest waiting request has waited this
   * fraction of its TTFT target (and the device can load it without evicting a model in use).
   * `Infinity` never scales out. The `token` policy has its own rule (DESIGN.md).
   */
  scaleOutWaitFraction: number;
  /** Reject a request (HTTP 429) when its predicted wait exceeds this multiple of its TTFT target; 0 disables. */
  admissionTtftFactor: number;
  /**
   * A request still waiting for a device (no prompt chunk run yet) is ended (`expire`) once
   * its TTFT deadline has passed by this multiple of its TTFT target: it has missed its SLO,
   * and serving it later takes the device from requests that can still meet theirs.
   * `Infinity` never ends one.
   */
  lateWaitCapFactor: number;
  /**
   * Share device time between tenants in proportion to their weights (fairShare.ts): a
   * tenant this far ahead in virtual time (device ms / weight) of another waiting tenant
   * starts nothing new. Off: requests start in the policy's order whoever sent them.
   */
  fairShare: boolean;
  fairShareWindowMs: number;
}

export const DEFAULT_SCHEDULER_OPTIONS: SchedulerOptions = {
  policy: "token",
  prefillChunkTokens: 64,
  maxGroupSize: 8,
  maxQuotaMs: DEFAULT_MAX_QUOTA_MS,
  decodeSliceMs: 30,
  scaleOutWaitFraction: 0.75,
  admissionTtftFactor: 0,
  lateWaitCapFactor: Infinity,
  fairShare: true,
  fairShareWindowMs: 500,
};
