/**
 * Metrics and request logs, as an operator meets them: a real server under a preemption,
 * scraped at GET /metrics, with the one-line-per-request JSON log captured.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { PassThrough } from "node:stream";
import { series, startPreemptionServer, waitFor } from "./helpers.ts";

describe("metrics and request log", () => {
  let server: Awaited<ReturnType<typeof startPreemptionServer>>;
  const logLines: Record<string, any>[] = [];
  before(async () => {
    const log = new PassThrough();
    let buf = "";
    log.on("data", (d) => {
      buf += d;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        logLines.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    server = await startPreemptionServer({ requestLog: log });
  });
  after(async () => server.shutdown());

  it("counts outcomes, SLOs, tokens, loads, evictions, preemptions and KV swaps; logs one line per request", async () => {
    const long = server.client.completions.create({ model: "long", prompt: "The pool serves many models", max_tokens: 400, temperature: 0 });
    await waitFor(() => server.commands.some((c) => c.kind === "decode" && c.modelId === "long"));
    const urgent = await server.client.completions.create({ model: "urgent", prompt: "Urgent", max_tokens: 8, temperature: 0 });
    const longResult = await long;
    // A client that walks away mid-stream: counted as cancelled, not scored against the SLO.
    const abort = new AbortController();
    const stream = await server.client.completions.create({ model: "urgent", prompt: "Going away", max_tokens: 200, stream: true }, { signal: abort.signal });
    let chunks = 0;
    try {
      for await (const _ of stream) {
        chunks++;
        abort.abort();
      }
    } catch {
      // the client's own abort
    }
    assert.ok(chunks >= 1 && chunks < 200, "the stream started and was cut short");
    await waitFor(() => server.pool.activeRequests === 0);

    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const v = (name: string, labels: Record<string, string> = {}) => series(text, name, labels);

    assert.equal(v("pitcher_requests_total", { model: "long", outcome: "length" }), 1);
    assert.equal(v("pitcher_requests_total", { model: "urgent", outcome: "length" }), 1);
    assert.equal(v("pitcher_requests_total", { model: "urgent", outcome: "cancelled" }), 1);
    const scored = ["long", "urgent"].map((m) => v("pitcher_slo_requests_total", { model: m, result: "met" })! + v("pitcher_slo_requests_total", { model: m, result: "missed" })!);
    assert.deepEqual(scored, [1, 1], "each completed request scored once; the cancelled one not at all");
    assert.equal(v("pitcher_generated_tokens_total", { model: "long" }), 400);
    assert.equal(v("pitcher_ttft_seconds_count", { model: "long" }), 1);
    assert.equal(v("pitcher_tbt_seconds_count", { model: "long" }), 399, "one gap between each pair of tokens");
    assert.ok(v("pitcher_preemptions_total", { model: "long" })! >= 1, "the long request was preempted");
    assert.ok(v("pitcher_model_loads_total", { model: "long", device: "dev0" })! >= 2, "long was loaded, evicted and reloaded");
    assert.ok(v("pitcher_model_evictions_total", { model: "long", device: "dev0" })! >= 1);
    assert.ok(v("pitcher_model_load_seconds_count", { model: "urgent" })! >= 1);
    const out = v("pitcher_kv_swap_bytes_total", { direction: "out" })!;
    assert.ok(out > 0, "KV bytes went out");
    assert.equal(v("pitcher_kv_swap_bytes_total", { direction: "in" }), out, "and the same bytes came back");
    assert.equal(v("pitcher_queue_depth", { model: "long" }), 0);
    assert.equal(v("pitcher_running_requests", { model: "urgent" }), 0);
    assert.equal(v("pitcher_device_memory_bytes", { device: "dev0", use: "capacity" }), 100_000_000);
    assert.ok(v("pitcher_device_memory_bytes", { device: "dev0", use: "weights" })! > 60_000_000, "a model is resident");
    assert.equal(v("pitcher_device_memory_bytes", { device: "dev0", use: "kv" }), 0, "no KV held once everything ended");
    assert.ok(v("pitcher_scheduler_decision_seconds_count")! > 0);
    assert.ok(v("pitcher_device_busy_seconds_total", { device: "dev0", kind: "decode" })! > 0);
    assert.equal(v("pitcher_device_up", { device: "dev0" }), 1);

    await waitFor(() => logLines.length >= 3);
    const byId = new Map(logLines.filter((l) => l.msg === "request").map((l) => [l.request_id, l]));
    assert.equal(byId.size, 3, "one line per request");
    const l = byId.get(longResult.id)!;
    assert.equal(l.model, "long");
    assert.equal(l.outcome, "length");
    assert.equal(l.completion_tokens, 400);
    assert.ok(l.ttft_ms > 0 && l.e2e_ms >= l.ttft_ms && l.max_tbt_gap_ms > 0);
    assert.match(l.slo, /^(met|missed)$/);
    assert.equal(byId.get(urgent.id)!.slo_ttft_ms, 400);
    const cancelled = [...byId.values()].find((x) => x.outcome === "cancelled")!;
    assert.equal(cancelled.slo, "not_scored");
    assert.equal(typeof cancelled.time, "string");
  });
});
