/**
 * Start-up measurement: each model is loaded (twice: the second, warm load is what a
 * switch costs), prefilled, decoded and swapped once on a real device, and the times seed
 * the scheduler's predictors. Online learning refines them from then on.
 */
import type { DeviceProcess } from "../engine/DeviceProcess.ts";
import { loadCommand } from "../engine/loadCommand.ts";
import type { ServedModel } from "../engine/resolveModels.ts";
import type { Predictor } from "../scheduler/Predictor.ts";
import { PROGRESS_EVERY_MS } from "./Pool.ts";

export interface CalibrationRow {
  modelId: string;
  warmLoadMs: number;
  prefillMsPerToken: number;
  decodeStepMs: number;
  kvSwapMs: number;
}

export async function calibrate(device: DeviceProcess, models: ServedModel[], predictor: Predictor, promptTokens: (m: ServedModel) => number[]): Promise<CalibrationRow[]> {
  const rows: CalibrationRow[] = [];
  for (const m of models) {
    const load = loadCommand(m, [], 64);
    await device.call(load);
    await device.call({ op: "evict", modelIds: [m.id] });
    const warm = await device.call(load);
    const id = `calibrate-${m.id}`;
    const prompt = promptTokens(m);
    const pre = await device.call({ op: "prefill", modelId: m.id, requestId: id, tokens: prompt, final: true, sampling: { temperature: 0 } });
    const steps = 8;
    const item = { requestId: id, token: pre.result.tokens![0]!, tokenIndex: 1, sampling: { temperature: 0 } };
    const decode = await device.call({ op: "decode", modelId: m.id, items: [item], steps, progressEveryMs: PROGRESS_EVERY_MS });
    const out = await device.call({ op: "swapOut", modelId: m.id, requestIds: [id] });
    const back = await device.call({ op: "swapIn", modelId: m.id, requestIds: [id] });
    await device.call({ op: "release", requestIds: [id] });
    await device.call({ op: "evict", modelIds: [m.id] });
    const decodeStepMs = decode.durationMs / (decode.result.steps ?? steps);
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
