/**
 * What a policy wants a device to run next, before memory is considered. The scheduler's
 * residency mechanism turns an intent into commands (swap out, evict, load, swap in) and
 * finally into the prefill or decode step itself.
 */
import type { ModelId, RequestId } from "../core/types.ts";

export type Intent =
  | { kind: "prefill"; modelId: ModelId; requestId: RequestId }
  | { kind: "decode"; modelId: ModelId; requestIds: RequestId[]; steps: number; interruptible?: boolean };
