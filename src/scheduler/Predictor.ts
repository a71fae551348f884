/**
 * Step-time and switch-cost predictors. They start from a model's estimates and learn from
 * every observed command (exponentially weighted), so the quotas and admission decisions
 * follow the machine actually running. Pure: observations come in as numbers.
 */
import type { CostEstimates, ModelId, ModelProfile } from "../core/types.ts";

const WEIGHT = 0.2;

function ewma(old: number | undefined, sample: number): number {
  return old === undefined ? sample : old + WEIGHT * (sample - old);
}

interface Learned {
  decodeByBatch: Map<number, number>;
  prefillMsPerToken?: number;
  loadMs?: number;
  unloadMs?: number;
  kvSwapMsPerToken?: number;
}

export class Predictor {
  private readonly learned = new Map<ModelId, Learned>();

  constructor(private readonly models: ReadonlyMap<ModelId, ModelProfile>) {}

  private est(modelId: ModelId): CostEstimates {
    const m = this.models.get(modelId);
    if (!m) throw new Error(`unknown model ${modelId}`);
    return m.estimates;
  }

  private state(modelId: ModelId): Learned {
    let s = this.learned.get(modelId);
    if (!s) {
      s = { decodeByBatch: new Map() };
      this.learned.set(modelId, s);
    }
    return s;
  }

  decodeStepMs(modelId: ModelId, batch: number): number {
    const s = this.learned.get(modelId);
    const seen = s?.decodeByBatch.get(batch);
    if (seen !== undefined) return seen;
    const e = this.est(modelId);
    // Scale the nearest learned batch size by the estimate's shape, else use the estimate.
    if (s && s.decodeByBatch.size > 0) {
      let nearest = 0;
      for (const b of s.decodeByBatch.keys()) if (nearest === 0 || Math.abs(b - batch) < Math.abs(nearest - batch)) nearest = b;
      const base = e.decodeStepMs + e.decodeExtraPerSequenceMs * (nearest - 1);
      const want = e.decodeStepMs + e.decodeExtraPerSequenceMs * (batch - 1);
      return s.decodeByBatch.get(nearest)! * (want / base);
    }
    return e.decodeStepMs + e.decodeExtraPerSequenceMs * (batch - 1);
  }

  prefillMs(modelId: ModelId, tokens: number): number {
    return (this.learned.get(modelId)?.prefillMsPerToken ?? this.est(modelId).prefillMsPerToken) * tokens;
  }

  loadMs(modelId: ModelId): number {
    return this.learned.get(modelId)?.loadMs ?? this.est(modelId).loadMs;
  }

  unloadMs(modelId: ModelId): number {
    return this.learned.get(modelId)?.unloadMs ?? this.est(modelId).unloadMs;
  }

  kvSwapMs(modelId: ModelId, tokens: number): number {
    return (this.learned.get(modelId)?.kvSwapMsPerToken ?? this.est(modelId).kvSwapMsPerToken) * tokens;
  }

  observeDecode(modelId: ModelId, batch: number, ms: number): void {
    const s = this.state(modelId);
    s.decodeByBatch.set(batch, ewma(s.decodeByBatch.get(batch), ms));
  }

  observePrefill(modelId: ModelId, tokens: number, ms: number): void {
    if (tokens <= 0) return;
    const s = this.state(modelId);
    s.prefillMsPerToken = ewma(s.prefillMsPerToken, ms / tokens);
  }

  observeLoad(modelId: ModelId, ms: number): void {
    const s = this.state(modelId);
    s.loadMs = ewma(s.loadMs, ms);
  }

  observeUnload(modelId: ModelId, ms: number): void {
    const s = this.state(modelId);
    s.unloadMs = ewma(s.unloadMs, ms);
  }

  observeKvSwap(modelId: ModelId, tokens: number, ms: number): void {
    if (tokens <= 0) return;
    const s = this.state(modelId);
    s.kvSwapMsPerToken = ewma(s.kvSwapMsPerToken, ms / tokens);
  }
}
