/**
 * Prometheus metrics of a pool (`GET /metrics`), fed by the pool's events and by its
 * scheduler snapshot at scrape time. prom-client does the bookkeeping and the format.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { HttpOutcome } from "./HttpOutcome.ts";
import type { ObservedPool } from "./ObservedPool.ts";
import { summarize } from "./requestSummary.ts";

const seconds = (ms: number) => ms / 1000;

export class PoolMetrics {
  readonly registry = new Registry();
  private readonly httpResponses = new Counter({
    name: "pitcher_http_responses_total",
    help: "HTTP answers by status and OpenAI error code (none for a success), refusals before any route included.",
    labelNames: ["status", "code"],
    registers: [this.registry],
  });

  constructor(pool: ObservedPool) {
    const r = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: "pitcher_" });

    const requests = new Counter({
      name: "pitcher_requests_total",
      help: "Requests ended, by model and outcome (stop, length, cancelled, failed, rejected).",
      labelNames: ["model", "outcome"],
      registers: r,
    });
    const slo = new Counter({
      name: "pitcher_slo_requests_total",
      help: "Requests scored against their deadline SLO (met or missed; failed and rejected are misses, cancelled are not scored).",
      labelNames: ["model", "result"],
      registers: r,
    });
    const ttft = new Histogram({
      name: "pitcher_ttft_seconds",
      help: "Time from arrival to the first output token.",
      labelNames: ["model"],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60],
      registers: r,
    });
    const tbt = new Histogram({
      name: "pitcher_tbt_seconds",
      help: "Time between consecutive output tokens of a request.",
      labelNames: ["model"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers: r,
    });
    const tokens = new Counter({ name: "pitcher_generated_tokens_total", help: "Output tokens generated.", labelNames: ["model"], registers: r });
    const promptTokens = new Counter({ name: "pitcher_prompt_tokens_total", help: "Prompt tokens of ended requests.", labelNames: ["model"], registers: r });
    const preemptions = new Counter({
      name: "pitcher_preemptions_total",
      help: "Requests preempted: their KV cache was parked in the host tier so the device could run other work.",
      labelNames: ["model"],
      registers: r,
    });
    const loads = new Counter({ name: "pitcher_model_loads_total", help: "Model weight loads onto a device.", labelNames: ["model", "device"], registers: r });
    const loadTime = new Histogram({
      name: "pitcher_model_load_seconds",
      help: "Duration of model loads (including evicting what made room for them).",
      labelNames: ["model"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    });
    const evictions = new Counter({ name: "pitcher_model_evictions_total", help: "Models evicted from a device.", labelNames: ["model", "device"], registers: r });
    const evictTime = new Histogram({
      name: "pitcher_model_evict_seconds",
      help: "Duration of evict commands (an eviction that makes room for a load is part of the load's duration).",
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: r,
    });
    const swapBytes = new Counter({
      name: "pitcher_kv_swap_bytes_total",
      help: "KV cache bytes moved to (out) or from (in) the host tier.",
      labelNames: ["direction"],
      registers: r,
    });
    const swapTime = new Histogram({
      name: "pitcher_kv_swap_seconds",
      help: "Duration of KV swap commands.",
      labelNames: ["direction"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: r,
    });
    const busy = new Counter({ name: "pitcher_device_busy_seconds_total", help: "Device time spent per command kind.", labelNames: ["device", "kind"], registers: r });
    const crashes = new Counter({ name: "pitcher_device_crashes_total", help: "Device worker crashes.", labelNames: ["device"], registers: r });
    const restartFailures = new Counter({
      name: "pitcher_device_restart_failures_total",
      help: "Failed attempts to start a crashed device worker again.",
      labelNames: ["device"],
      registers: r,
    });
    const decisions = new Histogram({
      name: "pitcher_scheduler_decision_seconds",
      help: "Time the scheduler takes to decide a device's next command.",
      buckets: [1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3],
      registers: r,
    });

    const snapshot = () => pool.snapshot();
    new Gauge({
      name: "pitcher_queue_depth",
      help: "Requests waiting for their first scheduling (queued), by model.",
      labelNames: ["model"],
      registers: r,
      collect() {
        for (const [m, n] of Object.entries(snapshot().waitingByModel)) this.set({ model: m }, n);
      },
    });
    new Gauge({
      name: "pitcher_running_requests",
      help: "Admitted requests past the queue (prefilling, decoding or preempted), by model.",
      labelNames: ["model"],
      registers: r,
      collect() {
        for (const [m, n] of Object.entries(snapshot().runningByModel)) this.set({ model: m }, n);
      },
    });
    new Gauge({
      name: "pitcher_host_kv_requests",
      help: "Requests whose KV cache is parked in the host tier now.",
      registers: r,
      collect() {
        this.set(snapshot().hostKvRequests);
      },
    });
    new Gauge({
      name: "pitcher_device_memory_bytes",
      help: "Device memory by use: weights and kv in use, capacity the budget.",
      labelNames: ["device", "use"],
      registers: r,
      collect() {
        for (const d of snapshot().devices) {
          this.set({ device: d.id, use: "weights" }, d.weightBytes);
          this.set({ device: d.id, use: "kv" }, d.kvBytes);
          this.set({ device: d.id, use: "capacity" }, d.memoryBytes);
        }
      },
    });
    new Gauge({
      name: "pitcher_resident_models",
      help: "1 for each model whose weights are on a device.",
      labelNames: ["device", "model"],
      registers: r,
      collect() {
        this.reset();
        for (const d of snapshot().devices) for (const m of d.residentModels) this.set({ device: d.id, model: m.modelId }, 1);
      },
    });
    new Gauge({
      name: "pitcher_device_up",
      help: "1 when the device worker is up.",
      labelNames: ["device"],
      registers: r,
      collect() {
        for (const d of snapshot().devices) this.set({ device: d.id }, d.down ? 0 : 1);
      },
    });

    // Every series a dashboard expects exists from the start, at zero.
    for (const m of pool.models.keys()) {
      for (const result of ["met", "missed"]) slo.inc({ model: m, result }, 0);
      tokens.inc({ model: m }, 0);
      preemptions.inc({ model: m }, 0);
    }

    pool.on("outcome", (o) => {
      const s = summarize(o);
      requests.inc({ model: s.modelId, outcome: s.outcome });
      if (s.sloMet !== null) slo.inc({ model: s.modelId, result: s.sloMet ? "met" : "missed" });
      if (s.ttftMs !== null) ttft.observe({ model: s.modelId }, seconds(s.ttftMs));
      for (const g of s.gapsMs) tbt.observe({ model: s.modelId }, seconds(g));
      tokens.inc({ model: s.modelId }, s.completionTokens);
      promptTokens.inc({ model: s.modelId }, s.promptTokens);
    });
    pool.on("command", (c) => {
      const ms = c.endMs - c.startMs;
      busy.inc({ device: c.deviceId, kind: c.kind }, seconds(ms));
      if (c.crashed) return;
      for (const m of c.evictModelIds) evictions.inc({ model: m, device: c.deviceId });
      if (c.kind === "evict") evictTime.observe(seconds(ms));
      if (c.kind === "load" && c.modelId) {
        loads.inc({ model: c.modelId, device: c.deviceId });
        loadTime.observe({ model: c.modelId }, seconds(ms));
      }
      if (c.kind === "swapOut" || c.kind === "swapIn") {
        const direction = c.kind === "swapOut" ? "out" : "in";
        swapBytes.inc({ direction }, c.bytes ?? 0);
        swapTime.observe({ direction }, seconds(ms));
        if (c.kind === "swapOut" && c.modelId) preemptions.inc({ model: c.modelId }, c.requestIds.length);
      }
    });
    pool.on("decision", (d) => decisions.observe(seconds(d.durationMs)));
    pool.on("device", (d) => {
      if (d.event === "crashed") crashes.inc({ device: d.deviceId });
      if (d.event === "restart_failed") restartFailures.inc({ device: d.deviceId });
    });
  }

  /** Count one HTTP answer (the API calls this for every answer it gives). */
  countHttp(o: HttpOutcome): void {
    this.httpResponses.inc({ status: String(o.status), code: o.code });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
