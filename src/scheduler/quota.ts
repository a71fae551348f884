/**
 * Decode time quotas for one round of weighted round-robin (scheduling.md, "Decode").
 * For batch i with predicted step time d_i and TBT target SLO_i: n_i = SLO_i / d_i,
 * S = sum(1/n_i), c0 = predicted switch cost of the round,
 * alpha = max(c0 / (min n_i * Qmax) + S, 0.5), q_i = c0 / (n_i * (alpha - S)).
 * alpha is the predicted TBT as a multiple of the SLO: <= 1 means the SLO holds.
 */
export interface QuotaInput {
  stepMs: number;
  tbtSloMs: number;
}

export interface QuotaPlan {
  quotasMs: number[];
  alpha: number;
}

export const DEFAULT_MAX_QUOTA_MS = 1500;

export function computeQuotas(batches: QuotaInput[], switchCostMs: number, maxQuotaMs = DEFAULT_MAX_QUOTA_MS): QuotaPlan {
  if (batches.length === 0) return { quotasMs: [], alpha: 0 };
  const n = batches.map((b) => b.tbtSloMs / Math.max(b.stepMs, 1e-6));
  const S = n.reduce((s, ni) => s + 1 / ni, 0);
  const minN = Math.min(...n);
  const alpha = Math.max(switchCostMs / (minN * maxQuotaMs) + S, 0.5);
  // With no switch in the round the formula gives 0: run one step per turn (plain round-robin).
  const quotasMs = n.map((ni) => (switchCostMs <= 0 || alpha <= S ? 0 : switchCostMs / (ni * (alpha - S))));
  return { quotasMs, alpha };
}
