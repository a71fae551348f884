/**
 * Start-up measurement: each model is loaded (twice: the second, warm load is what a
 * switch costs), prefilled, decoded and swapped once on a real device, and the times seed
 * the scheduler's predictors. Online learning refines them from then on.
 */
import type { DeviceProcess } from "../engine/DeviceProcess.ts";
import type { ServedModel } from "../engine/resolveModels.ts";
import type { Predictor } from "../scheduler/Predictor.ts";

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
    const load = {
      op: "load" as const,
      modelId: m.id,
      path: m.path,
      fingerprint: m.fingerprint,
      contextTokens: m.profile.contextTokens,
      slots: m.profile.maxBatch,
      batchTokens: 64,
      evict: [],
    };
    await device.call(load);
    await device.call({ op: "evict", modelIds: [m.id] });
    const warm = await device.call(load);
    const id = `calibrate-${m.id}`;
    const prompt = promptTokens(m);
    const pre = await device.call({ op: "prefill", modelId: m.id, requestId: id, tokens: prompt, final: true, sampling: { temperature: 0 } });
    let token = pre.result.tokens![0]!;
    const steps: number[] = [];
    for (let i = 0; i < 8; i++) {
      const d = await device.call({ op: "decode", modelId: m.id, items: [{ requestId: id, token, tokenIndex: i + 1, sampling: { temperature: 0 } }] });
      token = d.result.tokens![0]!;
      if (i >= 2) steps.push(d.durationMs);
    }
    const out = await device.call({ op: "swapOut", modelId: m.id, requestIds: [id] });
    const back = await device.call({ op: "swapIn", modelId: m.id, requestIds: [id] });
    await device.call({ op: "release", requestIds: [id] });
    await device.call({ op: "evict", modelIds: [m.id] });
    const decodeStepMs = steps.reduce((a, b) => a + b, 0) / steps.length;
    const kvTokens = prompt.length + 8;
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
