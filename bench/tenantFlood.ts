/**
 * Fair sharing on the real server (BENCHMARKS.md § 8): scenario P (six dense 58M Q8_0 models,
 * room for one per device, as bench/policies.ts runs it) with two API keys of equal weight.
 * Tenant A sends its fair rate (half the pool's knee); tenant B floods at a multiple of the
 * knee. A's deadline attainment and goodput with `scheduler.fairShare` on, off, and with A
 * alone (the same A requests: a tenant's stream depends only on its own seed and rate),
 * the three alternating, a fresh server per point.
 *
 *   nice -n 19 node --import tsx bench/tenantFlood.ts --rounds 2 --duration 60 --out /tmp/flood.json
 *
 * `--sim <profile>` runs the same requests through the simulator instead, priced with this
 * machine's profile (as bench/policiesSim.ts): the same scheduler, no machine load, one round.
 */
import { execSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { sloReport } from "../src/core/slo.ts";
import { runLoad } from "../src/loadgen/loadClient.ts";
import { machineProfileSchema, measuredCosts } from "../src/sim/machineProfile.ts";
import { loadMachineProfile } from "../src/sim/planInputs.ts";
import { simulate } from "../src/sim/Simulation.ts";
import { generateWorkload, type WorkloadRequest, workloadSchema } from "../src/workload/workload.ts";
import { scenarioModels } from "./scenarios.ts";
import { startServerProcess } from "./serverProcess.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const CACHE = path.join(ROOT, ".pitcher-cache");
const KEYS = { A: "sk-bench-tenant-a-0123456789", B: "sk-bench-tenant-b-0123456789" };

const opts = new Command()
  .option("--knee <r>", "the pool's capacity in req/s (scenario P, token policy: ≈8, BENCHMARKS.md § 2)", "8")
  .option("--polite <r>", "tenant A's rate, req/s (default: its fair share, half the knee)")
  .option("--flood <x>", "tenant B's rate as a multiple of the knee", "5")
  .option("--modes <list>", "alone, fair (fairShare on), unfair (off); run in this order each round", "alone,fair,unfair")
  .option("--weight <w>", "tenant A's key weight (B's is 1)", "1")
  .option("--rounds <n>", "rounds of all modes", "2")
  .option("--duration <s>", "seconds of load per point", "60")
  .option("--drain <s>", "seconds after the last arrival before what still runs is aborted (a miss)", "10")
  .option("--ttft <ms>", "TTFT target the servers schedule for and the score uses", "2000")
  .option("--admission <f>", "scheduler.admissionTtftFactor of the servers (0: off, as bench/policies.ts)", "0")
  .option("--late-cap <f>", "scheduler.lateWaitCapFactor of the servers (false: off, as bench/policies.ts)", "false")
  .option("--seed <n>", "workload seed", "7")
  .option("--out <file>", "JSON results", "")
  .option("--sim <profile>", "simulate with this machine profile instead of running servers (bench/results/machine-profile.json)")
  .option("--window <ms>", "with --sim: scheduler.fairShareWindowMs (default the scheduler's)")
  .parse()
  .opts();

const knee = Number(opts.knee);
const politeRate = opts.polite ? Number(opts.polite) : knee / 2;
const floodRate = Number(opts.flood) * knee;
const ttftMs = Number(opts.ttft);
const models = opts.sim ? Array.from({ length: 6 }, (_, i) => ({ id: `p58m-${i}`, path: "" })) : scenarioModels("P", CACHE);

async function startServer(fairShare: boolean) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-flood-"));
  const cfg = path.join(dir, "pitcher.json");
  fs.writeFileSync(
    cfg,
    JSON.stringify({
      cacheDir: CACHE,
      devices: { count: 2, threadsPerDevice: 1, memory: "80MB" },
      scheduler: {
        policy: "token",
        fairShare,
        admissionTtftFactor: Number(opts.admission),
        lateWaitCapFactor: opts.lateCap === "false" ? false : Number(opts.lateCap),
        calibrate: true,
        idleDecodeSliceMs: 250,
      },
      defaults: { slo: { ttftMs, tbtMs: 100 }, maxBatch: 4 },
      models,
      auth: {
        keys: [
          { name: "A", key: KEYS.A, weight: Number(opts.weight) },
          { name: "B", key: KEYS.B, weight: 1 },
        ],
      },
    }),
  );
  return startServerProcess(cfg);
}

/** Both tenants' requests, or A's alone: A's are the same in both (its own seed and rate). */
function workload(withFlood: boolean) {
  const tenants = withFlood
    ? [
        { name: "A", share: politeRate, weight: Number(opts.weight) },
        { name: "B", share: floodRate },
      ]
    : [{ name: "A", share: politeRate, weight: Number(opts.weight) }];
  const spec = workloadSchema.parse({
    seed: Number(opts.seed),
    durationSeconds: Number(opts.duration),
    ratePerSecond: withFlood ? politeRate + floodRate : politeRate,
    inputTokens: 64,
    outputTokens: 32,
    tenants,
  });
  return generateWorkload(
    spec,
    models.map((m) => m.id),
  );
}

async function served(requests: WorkloadRequest[], fairShare: boolean) {
  const server = await startServer(fairShare);
  const load = await runLoad(requests, { baseUrl: server.url, drainTimeoutMs: Number(opts.drain) * 1000, tenantKeys: new Map(Object.entries(KEYS)) });
  await server.stop();
  return load;
}

/** Scenario P in virtual time: six copies of the profiled 58M model on the profile's two devices. */
function simulated(requests: WorkloadRequest[], fairShare: boolean) {
  const base = loadMachineProfile(opts.sim);
  const template = base.models.find((m) => m.id === "llama-58m-q8-a")!;
  const profile = machineProfileSchema.parse({
    ...base,
    server: { ...base.server, admissionTtftFactor: Number(opts.admission) },
    models: models.map((m) => ({ ...template, id: m.id, slo: { ttftMs, tbtMs: 100 } })),
  });
  const lateWaitCapFactor = opts.lateCap === "false" ? Infinity : Number(opts.lateCap);
  const r = simulate(
    {
      costs: measuredCosts(profile),
      slo: () => ({ ttftMs, tbtMs: 100 }),
      devices: profile.devices.count,
      policy: "token",
      scheduler: { fairShare, lateWaitCapFactor, ...(opts.window ? { fairShareWindowMs: Number(opts.window) } : {}) },
      recordTimeline: true,
    },
    requests,
  );
  // The pool's busy share during the load (loads, prefill, decode, swaps), and its switches.
  const endMs = Number(opts.duration) * 1000;
  let busyMs = 0;
  for (const e of r.timeline) if (e.startMs < endMs) busyMs += Math.min(e.endMs, endMs) - e.startMs;
  console.log(`  device time busy ${((100 * busyMs) / (endMs * profile.devices.count)).toFixed(0)}%, switches ${r.switches}`);
  const errors: Record<string, number> = {};
  for (const t of r.traces) if (!t.ok) errors.refused = (errors.refused ?? 0) + 1;
  return { traces: r.traces, durationMs: Number(opts.duration) * 1000, errors };
}

const rows: Record<string, unknown>[] = [];
const modes = String(opts.modes).split(",");
console.log(`scenario P, A ${politeRate} req/s, B ${floodRate} req/s (${opts.flood}× the knee ${knee}), ${opts.duration} s per point, TTFT ${ttftMs} ms, TBT 100 ms`);
for (let round = 1; round <= (opts.sim ? 1 : Number(opts.rounds)); round++) {
  for (const mode of modes) {
    const uptime = opts.sim ? "simulated" : execSync("uptime").toString().trim();
    const requests = workload(mode !== "alone");
    const load = opts.sim ? simulated(requests, mode !== "unfair") : await served(requests, mode !== "unfair");
    const of = (name: string) => requests.flatMap((r, i) => (r.tenant!.id === name ? [load.traces[i]!] : []));
    const score = (name: string, ttft: number) => sloReport(of(name), () => ({ ttftMs: ttft, tbtMs: 100 }), load.durationMs);
    const a = score("A", ttftMs);
    const b = requests.some((r) => r.tenant!.id === "B") ? score("B", ttftMs) : null;
    const row = {
      round,
      mode,
      uptime,
      aRequests: a.requests,
      aAttainment: a.attainment,
      aGoodput: a.goodput,
      aAttainmentTtft10s: score("A", 10_000).attainment,
      aTtftP50Ms: a.ttftP50Ms,
      aTtftP99Ms: a.ttftP99Ms,
      bRequests: b?.requests ?? 0,
      bCompleted: b?.completed ?? 0,
      bGoodput: b?.goodput ?? 0,
      errors: load.errors,
    };
    rows.push(row);
    console.log(
      `round ${round} ${mode.padEnd(6)} A: n=${a.requests} attainment=${a.attainment.toFixed(3)} goodput=${a.goodput.toFixed(2)}/s attainment(TTFT 10s)=${row.aAttainmentTtft10s.toFixed(3)} TTFT p50/p99=${a.ttftP50Ms.toFixed(0)}/${a.ttftP99Ms.toFixed(0)} ms` +
        (b ? `  B: n=${b.requests} completed=${b.completed} goodput=${b.goodput.toFixed(2)}/s` : "") +
        `  errors=${JSON.stringify(load.errors)}  [${uptime.replace(/.*load average/, "load")}]`,
    );
    if (opts.out) fs.writeFileSync(opts.out, JSON.stringify({ options: opts, politeRate, floodRate, rows }, null, 2));
  }
}
