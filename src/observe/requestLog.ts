/**
 * Structured request log: one JSON line (pino) per request when it ends, with its id (the
 * `id` the client got back), model, outcome, token counts, latencies and SLO verdict.
 */
import { pino, type DestinationStream, type Logger } from "pino";
import type { ObservedPool } from "./ObservedPool.ts";
import { summarize } from "./requestSummary.ts";

const round = (x: number | null) => (x === null ? null : Math.round(x * 10) / 10);

export function attachRequestLog(pool: Pick<ObservedPool, "on">, destination: DestinationStream | NodeJS.WritableStream): Logger {
  const log = pino({ base: { service: "pitcher" }, timestamp: pino.stdTimeFunctions.isoTime }, destination as DestinationStream);
  pool.on("outcome", (o) => {
    const s = summarize(o);
    const line = {
      request_id: s.id,
      model: s.modelId,
      outcome: s.outcome,
      prompt_tokens: s.promptTokens,
      completion_tokens: s.completionTokens,
      ttft_ms: round(s.ttftMs),
      e2e_ms: round(s.e2eMs),
      max_tbt_gap_ms: round(s.maxGapMs),
      slo: s.sloMet === null ? "not_scored" : s.sloMet ? "met" : "missed",
      slo_ttft_ms: o.slo.ttftMs,
      slo_tbt_ms: o.slo.tbtMs,
      ...(s.error ? { error: s.error } : {}),
    };
    if (s.outcome === "failed") log.error(line, "request");
    else if (s.outcome === "rejected") log.warn(line, "request");
    else log.info(line, "request");
  });
  pool.on("device", (d) => log[d.event === "crashed" ? "error" : "info"]({ device: d.deviceId, event: d.event, detail: d.detail }, "device"));
  return log;
}
