/**
 * The device port: the one side effect the runtime drives. A device runs one command at a
 * time (the scheduler's `Command`, with the data the command needs); the runtime awaits
 * each. Implemented by `engine/` (a node-llama-cpp worker in a child process) and by a fake
 * for tests; one contract suite runs against both.
 *
 * What lives behind the port, not in the runtime: translating commands for a worker, the
 * models' files and end-of-generation tokens, the host KV tier's files (written by one
 * device, read by any, removed by `discard`), and crash detection.
 */
import type { DeviceId, ModelId, RequestId } from "./types.ts";

export interface Sampling {
  /** 0 = greedy (argmax). */
  temperature: number;
  topP?: number;
  /** Keep the k most likely tokens (0: all). */
  topK?: number;
  /** Drop tokens less likely than this fraction of the most likely one. */
  minP?: number;
  /** Base seed; the step seed is derived from it and the token index, so sampling survives preemption. */
  seed?: number;
  /**
   * Penalties over the output generated so far (OpenAI's presence and frequency: subtracted
   * from the logit once, or once per occurrence; llama.cpp's repeat: divides a positive
   * logit, multiplies a negative one). Any of them makes sampling read the output so far:
   * see `DecodeCall.items[].output`.
   */
  presencePenalty?: number;
  frequencyPenalty?: number;
  repeatPenalty?: number;
  /** [token, logit offset] pairs; an offset of -100 or less bans the token. */
  logitBias?: [number, number][];
  /** Report the sampled token's log-probability and the `logprobs` most likely alternatives' (0..20). */
  logprobs?: number;
  /** Constrain the output; the device that samples compiles and enforces it (issue 11). */
  grammar?: OutputGrammar;
}

/**
 * An output constraint. The grammar's state lives with the sequence on the device; a request
 * resumed elsewhere gets it rebuilt from the tokens it already generated, so constrained
 * output stays exact under preemption.
 */
export type OutputGrammar =
  /** JSON text; with `schema` (node-llama-cpp's JSON-schema subset), JSON valid against it. */
  | { kind: "json"; schema?: unknown }
  /** A GBNF grammar (llama.cpp's syntax), e.g. a model family's own tool-call syntax. */
  | { kind: "gbnf"; text: string };

/** Whether sampling depends on the output generated so far (penalties), which the device must then be given. */
export function samplingReadsOutput(s: Sampling): boolean {
  return !!s.presencePenalty || !!s.frequencyPenalty || (s.repeatPenalty !== undefined && s.repeatPenalty !== 1);
}

/**
 * Log-probabilities (natural log) of the distribution a token was drawn from: after logit
 * bias and penalties, and when sampling, after top-k / top-p / min-p and temperature.
 */
export interface TokenLogprobs {
  /** The sampled token's. */
  logprob: number;
  /** The most likely tokens', most likely first (as many as `Sampling.logprobs` asked). */
  top: { token: number; logprob: number }[];
}

/** One sampled token. `end`: it is an end-of-generation token (the request stops here). */
export interface SampledToken {
  requestId: RequestId;
  token: number;
  end: boolean;
  /** When `Sampling.logprobs` asked for them. */
  logprobs?: TokenLogprobs;
}

export interface DeviceResult {
  /** Wall time the device spent on the command. */
  durationMs: number;
  /** Prefill (final chunk): the first output token. */
  first?: SampledToken;
  /** Requests the command failed for, with why (e.g. a parked KV state failed its check); the rest succeeded. */
  failed?: { requestId: RequestId; error: string }[];
  /** KV swaps: bytes written or read. */
  bytes?: number;
  /** Decode: steps run (fewer than asked when every request ended or the run was yielded). */
  steps?: number;
  /** Prefill (final chunk) of an embedding: the input's vector, unit length; no token. */
  embedding?: { requestId: RequestId; vector: number[] };
}

export interface PrefillCall {
  modelId: ModelId;
  requestId: RequestId;
  /** The prompt slice this chunk evaluates. */
  tokens: number[];
  /** Last chunk: sample the first output token. */
  final: boolean;
  sampling: Sampling;
  /**
   * An embedding (the model must embed): the last chunk returns the vector of the whole
   * input, pooled as the model says, instead of a token, and the device keeps no KV of it.
   */
  embed?: boolean;
}

export interface DecodeItem {
  requestId: RequestId;
  token: number;
  tokenIndex: number;
  sampling: Sampling;
  output?: number[];
}

export interface DecodeCall {
  modelId: ModelId;
  /**
   * Each sequence's last token and that token's index in the output (0 = first). `output`:
   * the whole output so far (ending with `token`), sent when `samplingReadsOutput`: it
   * travels with the request, so a request parked and resumed on another device (or after
   * its model was reloaded) is penalized exactly as if it had never moved.
   */
  items: DecodeItem[];
  /** Steps to run back to back; a sequence that samples an end token leaves the run. */
  steps: number;
  /** Steps' tokens are reported together at most this often (and at the end); 0 = every step. */
  progressEveryMs: number;
}

/**
 * Every command may carry `release`: sequences of ended requests whose device KV must be
 * dropped before the command runs. A call rejects with `DeviceDownError` when the device
 * died under it; any other rejection is the command failing as a whole.
 */
export interface DevicePort {
  readonly id: DeviceId;
  /** Start (or restart) the device with nothing resident. */
  start(): Promise<void>;
  /** Stop the device; pending calls reject. */
  stop(): Promise<void>;
  /** Called when the device dies outside `stop()` (native abort, killed process). */
  onCrash(listener: (detail: string) => void): void;

  load(modelId: ModelId, evict: ModelId[], release: RequestId[]): Promise<DeviceResult>;
  evict(modelIds: ModelId[], release: RequestId[]): Promise<DeviceResult>;
  prefill(call: PrefillCall, release: RequestId[]): Promise<DeviceResult>;
  /** `onTokens` receives each step's tokens while the run goes on. */
  decode(call: DecodeCall, release: RequestId[], onTokens: (tokens: SampledToken[]) => void): Promise<DeviceResult>;
  /** Park these sequences' KV in the host tier and free their device slots. */
  swapOut(modelId: ModelId, requestIds: RequestId[], release: RequestId[]): Promise<DeviceResult>;
  /** Restore parked KV (written by this or any other device of the pool) into device slots. */
  swapIn(modelId: ModelId, requestIds: RequestId[], release: RequestId[]): Promise<DeviceResult>;
  /** Drop ended requests' device KV now (the device has nothing else to do). */
  release(requestIds: RequestId[]): Promise<void>;
  /** End the running decode after its current step (new work arrived). */
  yieldDecode(): void;
  /** Take these requests out of the decode running now (no answer; ignored when none runs). */
  cancel(requestIds: RequestId[]): void;
  /** The request ended for good: remove whatever it left in the host KV tier. */
  discard(requestId: RequestId): void;
}

/** The device died under a call (its process exited, or it is not running). */
export class DeviceDownError extends Error {
  constructor(
    readonly deviceId: DeviceId,
    readonly detail: string,
  ) {
    super(`device ${deviceId} is down (${detail})`);
  }
}
