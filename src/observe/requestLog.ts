/**
 * Structured request log: one JSON line (pino) per request when it ends, with its id (the
 * `id` the client got back), model, outcome, token counts, latencies and SLO verdict; and
 * one line per request the HTTP layer refused before it reached the pool.
 */
import { pino, type DestinationStream, type Logger } from "pino";
import type { HttpOutcome } from "./HttpOutcome.ts";
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
      ...(o.tenant !== undefined ? { tenant: o.tenant } : {}),
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
  pool.on("device", (d) =>
    log[d.event === "restarted" ? "info" : "error"](
      {
        device: d.deviceId,
        event: d.event,
        detail: d.detail,
        ...(d.attempt !== undefined ? { attempt: d.attempt } : {}),
        ...(d.retryInMs !== undefined ? { retry_in_ms: d.retryInMs } : {}),
        ...(d.state ? { state: d.state } : {}),
      },
      "device",
    ),
  );
  return log;
}

/**
 * A line for each refusal that never reached the pool (a request that did has its own line,
 * from the pool's outcome): status, code, route, method and model when known. Nothing of
 * the prompt or the headers, so neither keys nor user text reach the log.
 */
export function logHttpRefusals(log: Logger): (o: HttpOutcome) => void {
  return (o) => {
    if (o.status < 400 || o.admitted) return;
    log.warn({ status: o.status, code: o.code, route: o.route, method: o.method, model: o.model, ...(o.tenant ? { tenant: o.tenant } : {}) }, "refused");
  };
}
