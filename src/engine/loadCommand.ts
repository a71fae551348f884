import type { ModelId } from "../core/types.ts";
import type { WorkerCommand } from "./protocol.ts";
import type { ServedModel } from "./resolveModels.ts";

/** The worker command that makes a model resident: one context with a slot per batch sequence. */
export function loadCommand(m: ServedModel, endTokens: Iterable<number>, batchTokens: number, evict: ModelId[] = []): WorkerCommand {
  return {
    op: "load",
    modelId: m.id,
    path: m.path,
    fingerprint: m.fingerprint,
    contextTokens: m.profile.contextTokens,
    slots: m.profile.maxBatch,
    batchTokens: Math.max(batchTokens, m.profile.maxBatch),
    evict,
    endTokens: [...endTokens],
  };
}
