/**
 * Carries out one scheduler command on a device: the command says what runs and on which
 * requests; the live requests supply the data (prompt slices, last tokens, sampling).
 */
import { type DevicePort, type DeviceResult, type SampledToken, samplingReadsOutput } from "../core/devicePort.ts";
import type { Command, RequestId } from "../core/types.ts";
import type { LiveRequest } from "./LiveRequest.ts";

/**
 * Longest a decoded token waits in the device before it is streamed. Sending every step of
 * a 3 ms step costs ≈15% of single-stream speed on CPU (BENCHMARKS.md § 1).
 */
export const PROGRESS_EVERY_MS = 25;

export function runCommand(device: DevicePort, cmd: Command, live: (id: RequestId) => LiveRequest, onTokens: (tokens: SampledToken[]) => void): Promise<DeviceResult> {
  switch (cmd.kind) {
    case "load":
      return device.load(cmd.modelId, cmd.evict, cmd.release);
    case "evict":
      return device.evict(cmd.modelIds, cmd.release);
    case "prefill": {
      const r = live(cmd.requestId);
      const tokens = r.params.promptTokens.slice(cmd.fromToken, cmd.toToken);
      return device.prefill(
        { modelId: cmd.modelId, requestId: cmd.requestId, tokens, final: cmd.final, sampling: r.params.sampling, ...(r.params.embed ? { embed: true } : {}) },
        cmd.release,
      );
    }
    case "decode": {
      const reqs = cmd.requestIds.map(live);
      const items = reqs.map((r) => ({
        requestId: r.id,
        token: r.output[r.output.length - 1]!,
        tokenIndex: r.output.length,
        sampling: r.params.sampling,
        // Penalties read the output so far: it goes with the request, wherever it resumes.
        ...(samplingReadsOutput(r.params.sampling) ? { output: r.output.slice() } : {}),
      }));
      // Tokens reach the client in bursts this far apart at most: a quarter of the tightest
      // TBT target in the batch, and never more than PROGRESS_EVERY_MS.
      const progressEveryMs = Math.min(PROGRESS_EVERY_MS, ...reqs.map((r) => r.slo.tbtMs / 4));
      return device.decode({ modelId: cmd.modelId, items, steps: cmd.steps, progressEveryMs }, cmd.release, onTokens);
    }
    case "swapOut":
      return device.swapOut(cmd.modelId, cmd.requestIds, cmd.release);
    case "swapIn":
      return device.swapIn(cmd.modelId, cmd.requestIds, cmd.release);
  }
}
