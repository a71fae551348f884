/**
 * Policies side by side (BENCHMARKS.md): the same models, devices, threads, memory budget
 * and seeded Poisson workload against a real Pitcher server per policy and rate; deadline-SLO
 * attainment and goodput at each rate.
 *
 *   node --import tsx bench/policies.ts --scenario default --rates 2,4,6,8 --duration 60
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { runLoad } from "../src/loadgen/loadClient.ts";
import { sloReport } from "../src/core/slo.ts";
import { generateWorkload } from "../src/workload/workload.ts";
import { applyScenarioDefaults, isScenario, scenarioModels } from "./scenarios.ts";
import { scenarioWorkload } from "./scenarioWorkload.ts";
import { startServerProcess } from "./serverProcess.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const CACHE = path.join(ROOT, ".pitcher-cache");

const program = new Command()
  .option(
    "--scenario <name>",
    "default (the embedded catalog), P (six 58M Q8_0 models) or L (six ≈400M Q8_0 models, 128k vocabulary; long outputs, Zipf, bursts: bench/scenarios.ts)",
    "default",
  )
  .option("--policies <list>", "policies", "token,request")
  .option("--rates <list>", "arrival rates, req/s", "2,4,6,8")
  .option("--duration <s>", "seconds per rate", "60")
  .option("--ttft <ms>", "TTFT target the servers schedule for", "2000")
  .option("--output-cv <cv>", "log-normal output lengths of this coefficient of variation (0: fixed)", "0")
  .option("--arrival-cv <cv>", "gamma arrivals of this coefficient of variation (1: Poisson)", "1")
  .option("--popularity <kind>", "uniform or zipf", "uniform")
  .option("--output <n>", "output tokens per request", "32")
  .option("--memory <size>", "device memory budget (weights + KV) per device; 80MB holds one 58M model, 500MB all six", "80MB")
  .option("--idle-slice <ms>", "scheduler.idleDecodeSliceMs of the servers", "250")
  .option("--seed <n>", "workload seed", "7")
  .option("--admission <f>", "scheduler.admissionTtftFactor of the servers (0: off)", "0")
  .option("--late-cap <f>", "scheduler.lateWaitCapFactor of the servers (false: off)", "false")
  .option("--out <file>", "JSON results", "")
  .option("--model-files <list>", "comma-separated GGUF files served instead of the scenario's (each under its file name)", "")
  .option("--gpu <kind>", "devices.gpu of the servers: false (CPU), cuda, vulkan, metal or auto", "false")
  .option("--devices <n>", "devices.count of the servers", "2")
  .option("--context <n>", "defaults.contextTokens of the servers (default: the server's)", "")
  .parse();
const opts = program.opts();
if (!isScenario(opts.scenario)) throw new Error(`--scenario: default, P or L, not ${opts.scenario}`);
// A scenario's own defaults (L: memory, output lengths, arrivals, popularity) unless given.
applyScenarioDefaults(opts.scenario, opts, (k) => program.getOptionValueSource(k));

async function startServer(policy: string, models: { id: string; path: string }[], ttftMs: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-bench-"));
  const cfg = path.join(dir, "pitcher.json");
  fs.writeFileSync(
    cfg,
    JSON.stringify({
      cacheDir: CACHE,
      devices: { count: Number(opts.devices), threadsPerDevice: 1, memory: String(opts.memory), gpu: opts.gpu === "false" ? false : opts.gpu },
      scheduler: {
        policy,
        admissionTtftFactor: Number(opts.admission),
        lateWaitCapFactor: opts.lateCap === "false" ? false : Number(opts.lateCap),
        calibrate: true,
        idleDecodeSliceMs: Number(opts.idleSlice),
      },
      defaults: { slo: { ttftMs, tbtMs: 100 }, maxBatch: 4, ...(opts.context ? { contextTokens: Number(opts.context) } : {}) },
      models,
    }),
  );
  return startServerProcess(cfg);
}

const models = opts.modelFiles
  ? String(opts.modelFiles)
      .split(",")
      .map((f) => ({ id: path.basename(f, ".gguf"), path: path.resolve(f) }))
  : scenarioModels(opts.scenario, CACHE);
const ttftMs = Number(opts.ttft);
const rows: Record<string, unknown>[] = [];
for (const policy of String(opts.policies).split(",")) {
  for (const rate of String(opts.rates).split(",").map(Number)) {
    const server = await startServer(policy, models, ttftMs);
    const requests = generateWorkload(
      scenarioWorkload(opts, rate),
      models.map((m) => m.id),
    );
    const load = await runLoad(requests, { baseUrl: server.url, drainTimeoutMs: 30_000 });
    await server.stop();
    const at = (ttft: number) => sloReport(load.traces, () => ({ ttftMs: ttft, tbtMs: 100 }), load.durationMs);
    const main = at(ttftMs);
    const loose = at(10_000);
    const row = {
      policy,
      rate,
      requests: main.requests,
      attainment: main.attainment,
      goodput: main.goodput,
      attainmentTtft10s: loose.attainment,
      ttftP50Ms: main.ttftP50Ms,
      ttftP99Ms: main.ttftP99Ms,
      tbtP99Ms: main.tbtP99Ms,
      gapsOverTbt: main.gapsOverTbt,
      errors: load.errors,
    };
    rows.push(row);
    console.log(
      `${policy.padEnd(8)} ${String(rate).padStart(4)} req/s  n=${main.requests}  attainment(TTFT ${ttftMs / 1000}s)=${main.attainment.toFixed(3)}  goodput=${main.goodput.toFixed(2)}/s  attainment(TTFT 10s)=${loose.attainment.toFixed(3)}  TTFT p50/p99=${main.ttftP50Ms.toFixed(0)}/${main.ttftP99Ms.toFixed(0)} ms  TBT p99=${main.tbtP99Ms.toFixed(0)} ms  gaps>TBT=${(main.gapsOverTbt * 100).toFixed(1)}%  errors=${JSON.stringify(load.errors)}`,
    );
  }
}
if (opts.out) fs.writeFileSync(opts.out, JSON.stringify({ options: opts, rows }, null, 2));
