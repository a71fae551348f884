/**
 * Start-up measurement: each model is loaded (twice: the second, warm load is what a
 * switch costs), prefilled, decoded and swapped once on a real device, and the times seed
 * the scheduler's predictors. Online learning refines them from then on.
 */
import type { DevicePort } from "../core/devicePort.ts";
import type { ServedModel } from "../core/servedModel.ts";
import type { Predictor } from "../scheduler/Predictor.ts";
import { PROGRESS_EVERY_MS } from "./runCommand.ts";

export interface CalibrationRow {
  modelId: string;
  warmLoadMs: number;
  prefillMsPerToken: number;
  decodeStepMs: number;
  kvSwapMs: number;
}

export async function calibrate(device: DevicePort, models: ServedModel[], predictor: Predictor, promptTokens: (m: ServedModel) => number[]): Promise<CalibrationRow[]> {
  const rows: CalibrationRow[] = [];
  const greedy = { temperature: 0 };
  for (const m of models) {
    await device.load(m.id, [], []);
    await device.evict([m.id], []);
    const warm = await device.load(m.id, [], []);
    const id = `calibrate-${m.id}`;
    const prompt = promptTokens(m);
    if (m.embedding) {
      // An embedding model only prefills (and never decodes or parks KV).
      const pre = await device.prefill({ modelId: m.id, requestId: id, tokens: prompt, final: true, sampling: greedy, embed: true }, []);
      await device.evict([m.id], []);
      predictor.observeLoad(m.id, warm.durationMs);
      predictor.observePrefill(m.id, prompt.length, pre.durationMs);
      rows.push({ modelId: m.id, warmLoadMs: warm.durationMs, prefillMsPerToken: pre.durationMs / prompt.length, decodeStepMs: 0, kvSwapMs: 0 });
      continue;
    }
    const pre = await device.prefill({ modelId: m.id, requestId: id, tokens: prompt, final: true, sampling: greedy }, []);
    const steps = 8;
    const item = { requestId: id, token: pre.first!.token, tokenIndex: 1, sampling: greedy };
    // An end token may cut the run short: the step time divides by the steps run.
    const decode = await device.decode({ modelId: m.id, items: [item], steps, progressEveryMs: PROGRESS_EVERY_MS }, [], () => {});
    const out = await device.swapOut(m.id, [id], []);
    const back = await device.swapIn(m.id, [id], []);
    await device.release([id]);
    await device.evict([m.id], []);
    const decodeStepMs = decode.durationMs / (decode.steps ?? steps);
    const kvTokens = prompt.length + steps;
    predictor.observeLoad(m.id, warm.durationMs);
    predictor.observePrefill(m.id, prompt.length, pre.durationMs);
    predictor.observeDecode(m.id, 1, decodeStepMs);
    predictor.observeKvSwap(m.id, kvTokens, (out.durationMs + back.durationMs) / 2);
    rows.push({
      modelId: m.id,
      warmLoadMs: warm.durationMs,
      prefillMsPerToken: pre.durationMs / prompt.length,
      decodeStepMs,
      kvSwapMs: (out.durationMs + back.durationMs) / 2,
    });
  }
  return rows;
}
