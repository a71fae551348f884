/**
 * The message protocol between the server and a device worker (one child process per
 * device). Every request carries an id; the worker answers each exactly once. Token ids
 * and timings travel; text never does (the server tokenizes and detokenizes).
 */
import type { DecodeItem, Sampling, TokenLogprobs } from "../core/devicePort.ts";
import type { ModelId, RequestId } from "../core/types.ts";

export interface WorkerInit {
  threads: number;
  gpu: "auto" | false | "cuda" | "vulkan" | "metal";
  /** Folder of the host KV tier (tmpfs where available). */
  kvDir: string;
}

export type WorkerCommand =
  | {
      op: "load";
      modelId: ModelId;
      path: string;
      fingerprint: string;
      contextTokens: number;
      slots: number;
      batchTokens: number;
      /** Models to drop first, to make room. */
      evict: ModelId[];
      /** End-of-generation tokens: a sequence that samples one leaves a multi-step decode. */
      endTokens: number[];
      /** Load as an embedding model (engine/embedding.ts): it embeds and generates nothing. */
      embedding?: boolean;
    }
  | { op: "evict"; modelIds: ModelId[] }
  | {
      op: "prefill";
      modelId: ModelId;
      requestId: RequestId;
      tokens: number[];
      final: boolean;
      /** Index of the output token the final chunk samples (0 for the first). */
      sampling: Sampling;
      /** An embedding: the final chunk answers the whole input's vector, not a token. */
      embed?: boolean;
    }
  | {
      op: "decode";
      modelId: ModelId;
      items: DecodeItem[];
      /** Steps to run back to back. */
      steps: number;
      /**
       * Steps' tokens go out together at most this often (and at the end): one message per
       * fast step costs more than the step. 0: every step at once.
       */
      progressEveryMs: number;
    }
  | { op: "swapOut"; modelId: ModelId; requestIds: RequestId[] }
  | { op: "swapIn"; modelId: ModelId; requestIds: RequestId[] }
  | { op: "release"; requestIds: RequestId[] };

export type WorkerMessage =
  | { id: number; release: RequestId[]; command: WorkerCommand }
  | { id: number; init: WorkerInit }
  /** Handled at once, even while a command runs: drop these requests from a running decode. */
  | { id: number; cancel: RequestId[] }
  /** Handled at once: end the running (or next) decode after its current step. */
  | { id: number; yield: true };

export interface WorkerResult {
  /** prefill (final): the first output token; decode: one token per item, in order. */
  tokens?: number[];
  /** With `tokens`, when the request's sampling asked for them (null where it did not). */
  logprobs?: (TokenLogprobs | null)[];
  /** Requests the command failed for, with why; the rest succeeded. */
  failed?: { requestId: RequestId; error: string }[];
  /** Bytes written or read (KV swaps). */
  bytes?: number;
  /** Decode: steps run. */
  steps?: number;
  /** Prefill (final) of an embedding: the input's vector, unit length. */
  embedding?: number[];
}

/**
 * Decode steps' tokens, sent while the command goes on: every step's at once when steps are
 * slow, a few steps' together when they are fast (one message per step would cost more
 * than the step itself: see BENCHMARKS.md).
 */
export interface WorkerProgress {
  id: number;
  progress: { requestIds: RequestId[]; tokens: number[]; logprobs?: (TokenLogprobs | null)[] }[];
}

export type WorkerReply = { id: number; ok: true; durationMs: number; result: WorkerResult } | { id: number; ok: false; error: string; code: string };
