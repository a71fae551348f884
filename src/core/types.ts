/**
 * Shared vocabulary of Pitcher: ids, model and device profiles, request records and the
 * commands a scheduler hands to a device. Types and tiny pure helpers only.
 */
export type ModelId = string;
export type DeviceId = string;
export type RequestId = string;

export interface SloTargets {
  /** Time to first token target, from arrival. */
  ttftMs: number;
  /** Time between tokens target (deadline style, see deadlineMs). */
  tbtMs: number;
}

export const DEFAULT_SLO: SloTargets = { ttftMs: 10_000, tbtMs: 100 };

/** SLO targets from layered, partly given settings: later layers win where they give a value. */
export function resolveSlo(base: SloTargets, ...layers: ({ ttftMs?: number | undefined; tbtMs?: number | undefined } | undefined)[]): SloTargets {
  let out = base;
  for (const l of layers) out = { ttftMs: l?.ttftMs ?? out.ttftMs, tbtMs: l?.tbtMs ?? out.tbtMs };
  return out;
}

/** What the scheduler needs to know of a model: sizes, limits, targets, first guesses of cost. */
export interface ModelProfile {
  id: ModelId;
  weightBytes: number;
  kvBytesPerToken: number;
  /** Largest number of tokens (prompt + output) one sequence may hold. */
  contextTokens: number;
  /** Sequences decoded together at most (and context slots on a device). */
  maxBatch: number;
  slo: SloTargets;
  /** First guesses; predictors learn the real values online. */
  estimates: CostEstimates;
}

export interface CostEstimates {
  /** One decode step of a batch of one. */
  decodeStepMs: number;
  /** Added per extra sequence in a decode batch. */
  decodeExtraPerSequenceMs: number;
  prefillMsPerToken: number;
  /** Making the model resident (weights in, context ready). */
  loadMs: number;
  /** Dropping the model. */
  unloadMs: number;
  /** Moving one token of KV between device and host, each way. */
  kvSwapMsPerToken: number;
}

export interface DeviceProfile {
  id: DeviceId;
  /** Budget for resident weights plus KV. */
  memoryBytes: number;
  /** Models this device may serve; undefined means any (dedicated placement sets it). */
  allowedModels?: ModelId[];
}

export type FinishReason = "stop" | "length" | "cancelled" | "error";

/** A request as the scheduler sees it: lengths, not text. */
export interface RequestSpec {
  id: RequestId;
  modelId: ModelId;
  arrivalMs: number;
  promptTokens: number;
  maxOutputTokens: number;
  /** Per-request override of the model's SLO. */
  slo?: SloTargets;
  /**
   * Prefill the prompt in one command, not in chunks: an embedding pools over the whole
   * input at once (its final prefill yields the vector; it asks for one output token).
   */
  wholePrompt?: boolean;
  /** Whose request it is, for fair sharing (scheduler/fairShare.ts); absent: the one default tenant. */
  tenant?: TenantRef;
}

/** A tenant as the scheduler sees it: a name and its weight in fair sharing (device time ∝ weight). */
export interface TenantRef {
  id: string;
  weight: number;
}

/**
 * Deadline of output token k (0-based: k = 0 is the first token) under the deadline SLO:
 * arrival + TTFT + k * TBT. See ../shared/docs/scheduling.md.
 */
export function tokenDeadlineMs(arrivalMs: number, slo: SloTargets, k: number): number {
  return arrivalMs + slo.ttftMs + k * slo.tbtMs;
}

/**
 * What a device is told to do next. One command at a time per device; the driver carries
 * it out and reports back with `onCommandDone`. `release` lists sequences whose requests
 * ended and whose device KV must be dropped before the command runs.
 */
export type Command =
  | { kind: "load"; deviceId: DeviceId; modelId: ModelId; evict: ModelId[]; release: RequestId[] }
  | {
      kind: "prefill";
      deviceId: DeviceId;
      modelId: ModelId;
      requestId: RequestId;
      /** Prompt token range [fromToken, toToken) to evaluate. */
      fromToken: number;
      toToken: number;
      /** Last chunk: produce the first output token. */
      final: boolean;
      release: RequestId[];
    }
  | {
      kind: "decode";
      deviceId: DeviceId;
      modelId: ModelId;
      requestIds: RequestId[];
      /** Decode steps to run back to back (each gives every request one token). */
      steps: number;
      /**
       * A long run planned because nothing else waited: the driver may end it after any
       * step when new work arrives (the outcome reports the steps run).
       */
      interruptible?: boolean;
      release: RequestId[];
    }
  | { kind: "swapOut"; deviceId: DeviceId; modelId: ModelId; requestIds: RequestId[]; release: RequestId[] }
  | { kind: "swapIn"; deviceId: DeviceId; modelId: ModelId; requestIds: RequestId[]; release: RequestId[] }
  | { kind: "evict"; deviceId: DeviceId; modelIds: ModelId[]; release: RequestId[] };

export type CommandKind = Command["kind"];

/** What the driver reports when a command ends. */
export interface CommandOutcome {
  /** Wall (or virtual) time the command took. */
  durationMs: number;
  /** Decode: steps actually run (fewer when every request ended early). Default: all. */
  steps?: number;
  /** Requests the command failed for (e.g. a corrupt state file); they end with an error. */
  failedRequestIds?: RequestId[];
}

export interface FinishedRequest {
  requestId: RequestId;
  reason: FinishReason;
  error?: string;
}
