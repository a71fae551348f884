/**
 * Per-tenant (API key name, never the key) Prometheus series, in the pool's registry:
 * requests by outcome (the pool's outcomes, and refusals by a key's limits), prompt and
 * output tokens, SLO met or missed, and the budget left. Only requests that carry a tenant
 * count, so a server without keys has none of these series.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { ObservedPool } from "./ObservedPool.ts";
import { summarize } from "./requestSummary.ts";

export class TenantMetrics {
  private readonly requests: Counter<"tenant" | "outcome">;

  constructor(pool: Pick<ObservedPool, "on">, registry: Registry, budgetLeft?: () => Promise<{ tenant: string; tokens: number }[]>) {
    const registers = [registry];
    this.requests = new Counter({
      name: "pitcher_tenant_requests_total",
      help: "Requests by API key name and outcome (stop, length, cancelled, failed, rejected; rate_limit_exceeded and insufficient_quota for a key's limits).",
      labelNames: ["tenant", "outcome"],
      registers,
    });
    const tokens = new Counter({
      name: "pitcher_tenant_tokens_total",
      help: "Tokens of ended requests by API key name and kind (prompt, completion).",
      labelNames: ["tenant", "kind"],
      registers,
    });
    const slo = new Counter({
      name: "pitcher_tenant_slo_requests_total",
      help: "Requests scored against their deadline SLO by API key name (met or missed).",
      labelNames: ["tenant", "result"],
      registers,
    });
    if (budgetLeft)
      new Gauge({
        name: "pitcher_tenant_budget_remaining_tokens",
        help: "Tokens left in the key's budget for the current period (reservations of running requests counted as spent).",
        labelNames: ["tenant"],
        registers,
        async collect() {
          for (const b of await budgetLeft()) this.set({ tenant: b.tenant }, b.tokens);
        },
      });
    pool.on("outcome", (o) => {
      if (o.tenant === undefined) return;
      const s = summarize(o);
      this.requests.inc({ tenant: o.tenant, outcome: s.outcome });
      tokens.inc({ tenant: o.tenant, kind: "prompt" }, s.promptTokens);
      tokens.inc({ tenant: o.tenant, kind: "completion" }, s.completionTokens);
      if (s.sloMet !== null) slo.inc({ tenant: o.tenant, result: s.sloMet ? "met" : "missed" });
    });
  }

  /** A key's limit refused a request before it reached the pool. */
  countRefusal(tenant: string, code: string): void {
    this.requests.inc({ tenant, outcome: code });
  }
}
