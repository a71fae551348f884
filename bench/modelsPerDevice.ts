/**
 * Models per device (issue 15, BENCHMARKS.md § 4 "Models per device"): N models, each at a
 * low arrival rate, on ONE device; the largest N each policy serves at deadline attainment
 * 0.99, and at the on-schedule score 0.9 (the reference system's measure, which reports up
 * to 7 models per GPU).
 *
 *   node --import tsx bench/modelsPerDevice.ts --real [--rate 0.2] [--duration 60] [--ttft 10000]
 *   node --import tsx bench/modelsPerDevice.ts --sim [--rate 0.1] [--seconds 600]
 *
 * `--real`: a fresh Pitcher server per point (one device, one thread, `--memory` 80MB: room
 * for one of the 58M Q8_0 stand-ins of scenario P, bench/scenarios.ts), N distinct stand-ins,
 * the seeded open-loop workload of the policy sweeps (bench/scenarioWorkload.ts: Poisson,
 * uniform popularity, 64-token prompts). The policies' searches are stepped in turn, one run
 * each, so they are measured side by side under the same machine load.
 *
 * `--sim`: one H800 in the simulator, the reference recipe's 6:2:2 mix and ShareGPT-like
 * lengths (bench/referenceMix.ts), TTFT 10 s, TBT 100 ms; `serverless` loads at 12.6 GB/s
 * (the ServerlessLLM loader, as in referenceRecipe.ts).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { sloReport, type SloReport } from "../src/core/slo.ts";
import { runLoad } from "../src/loadgen/loadClient.ts";
import { findAccelerator } from "../src/sim/accelerators.ts";
import { analyticCosts } from "../src/sim/SimCosts.ts";
import { simulate, type SimPolicy } from "../src/sim/Simulation.ts";
import { generateWorkload } from "../src/workload/workload.ts";
import { LargestNSearch } from "./largestN.ts";
import { referenceModels, referenceWorkload } from "./referenceMix.ts";
import { scenarioModels } from "./scenarios.ts";
import { scenarioWorkload } from "./scenarioWorkload.ts";
import { ROOT, startServerProcess } from "./serverProcess.ts";

const program = new Command()
  .option("--real", "the real server (CPU): N stand-ins on one device with room for one")
  .option("--sim", "the simulator: N of the reference mix on one H800")
  .option("--policies <list>", "policies, measured in turn", "token,request,serverless")
  .option("--rate <req/s>", "arrival rate per model (default: 0.2 real, 0.1 sim)")
  .option("--start <n>", "the first N tried; grows by half until a failure, then bisects", "2")
  .option("--max <n>", "the largest N tried", "")
  .option("--ttft <ms>", "TTFT target", "10000")
  .option("--tbt <ms>", "TBT target", "100")
  .option("--duration <s>", "real: seconds of load per point", "60")
  .option("--output <n>", "real: mean output tokens per request", "64")
  .option("--output-cv <cv>", "real: log-normal output lengths of this CV (0: fixed)", "0")
  .option("--memory <size>", "real: device memory budget (80MB holds one 58M stand-in)", "80MB")
  .option("--seconds <s>", "sim: simulated seconds per point", "600")
  .option("--seed <n>", "workload seed", "7")
  .option("--out <file>", "JSON results", "")
  .parse();
const opts = program.opts();
if (Boolean(opts.real) === Boolean(opts.sim)) throw new Error("choose one of --real or --sim");
const real = Boolean(opts.real);
const rate = Number(opts.rate ?? (real ? 0.2 : 0.1));
const max = Number(opts.max || (real ? 40 : 100));
const slo = { ttftMs: Number(opts.ttft), tbtMs: Number(opts.tbt) };
const policies = String(opts.policies).split(",");

interface Point {
  policy: string;
  n: number;
  requests: number;
  attainment: number;
  score: number;
  ttftP99Ms: number;
  switches?: number;
  errors?: Record<string, number>;
  /** Real: the 1-minute load average when the point ended. */
  load1?: number;
}

const CACHE = path.join(ROOT, ".pitcher-cache");

async function realPoint(policy: string, n: number): Promise<Point> {
  const models = scenarioModels("P", CACHE, n);
  const cfg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-mpd-")), "pitcher.json");
  fs.writeFileSync(
    cfg,
    JSON.stringify({
      cacheDir: CACHE,
      devices: { count: 1, threadsPerDevice: 1, memory: String(opts.memory) },
      // No refusals (admission) and no giving up on late requests: a miss is a miss, and
      // what is measured is the schedule alone (as in bench/policies.ts's defaults).
      scheduler: { policy, calibrate: true, admissionTtftFactor: 0, lateWaitCapFactor: false },
      defaults: { slo, maxBatch: 4 },
      models,
    }),
  );
  const server = await startServerProcess(cfg);
  const requests = generateWorkload(
    scenarioWorkload({ ...opts, popularity: "uniform" }, rate * n),
    models.map((m) => m.id),
  );
  let load: Awaited<ReturnType<typeof runLoad>>;
  try {
    load = await runLoad(requests, { baseUrl: server.url, drainTimeoutMs: 30_000 });
  } finally {
    await server.stop();
  }
  return { policy, n, ...scores(sloReport(load.traces, () => slo, load.durationMs)), errors: load.errors, load1: os.loadavg()[0]! };
}

const H800 = findAccelerator("H800")!;

function simPoint(policy: string, n: number): Point {
  const models = referenceModels(n);
  const requests = referenceWorkload(models, { seed: Number(opts.seed), seconds: Number(opts.seconds), ratePerModel: rate, outputScale: 1 });
  const r = simulate(
    {
      costs: analyticCosts(H800, models),
      slo: () => slo,
      devices: 1,
      policy: policy as SimPolicy,
      recordTraces: false,
      ...(policy === "serverless" ? { loadGBps: 12.6 } : {}),
    },
    requests,
  );
  return { policy, n, ...scores(r.report), switches: r.switches };
}

function scores(r: SloReport) {
  return { requests: r.requests, attainment: r.attainment, score: r.onScheduleScore, ttftP99Ms: r.ttftP99Ms };
}

/**
 * Two searches per policy (attainment 0.99, score 0.9) over one cache of measured points:
 * a run answers every search that asks for its N, so the score search mostly reuses the
 * attainment search's runs. Policies take turns, one run each.
 */
async function searchAll(run: (policy: string, n: number) => Promise<Point>) {
  const goals = { attainment: (p: Point) => p.attainment >= 0.99, score: (p: Point) => p.score >= 0.9 };
  const state = policies.map((policy) => ({
    policy,
    searches: { attainment: new LargestNSearch(Number(opts.start), max), score: new LargestNSearch(Number(opts.start), max) },
    points: new Map<number, Point>(),
  }));
  const settle = (s: (typeof state)[number]) => {
    for (const goal of ["attainment", "score"] as const) {
      const search = s.searches[goal];
      for (let n = search.next(); n !== undefined && s.points.has(n); n = search.next()) search.record(n, goals[goal](s.points.get(n)!));
    }
  };
  for (let ran = true; ran; ) {
    ran = false;
    for (const s of state) {
      settle(s);
      const n = s.searches.attainment.next() ?? s.searches.score.next();
      if (n === undefined) continue;
      const p = await run(s.policy, n);
      s.points.set(n, p);
      ran = true;
      console.error(
        `${p.policy.padEnd(10)} N=${String(n).padStart(3)}  requests=${p.requests}  attainment=${p.attainment.toFixed(3)}  score=${p.score.toFixed(3)}  TTFT p99=${(p.ttftP99Ms / 1000).toFixed(1)} s${p.switches !== undefined ? `  switches=${p.switches}` : ""}${p.load1 !== undefined ? `  load=${p.load1.toFixed(1)}  errors=${JSON.stringify(p.errors)}` : ""}`,
      );
    }
  }
  return state.map((s) => ({ policy: s.policy, nAttainment: s.searches.attainment.lo, nScore: s.searches.score.lo, points: [...s.points.values()] }));
}

const t0 = performance.now();
const results = await searchAll(real ? realPoint : async (p, n) => simPoint(p, n));
console.log(`| policy | largest N @ attainment 0.99 | largest N @ score 0.9 |`);
console.log(`|---|---|---|`);
for (const r of results) console.log(`| ${r.policy} | ${r.nAttainment} | ${r.nScore} |`);
const loadNow = os
  .loadavg()
  .map((l) => l.toFixed(1))
  .join(", ");
console.log(`(${real ? "real server" : "simulator, H800"}, ${rate} req/s per model, ${((performance.now() - t0) / 1000).toFixed(0)} s; load average now ${loadNow})`);
if (opts.out) fs.writeFileSync(opts.out, `${JSON.stringify({ mode: real ? "real" : "sim", rate, slo, options: opts, results }, null, 1)}\n`);
