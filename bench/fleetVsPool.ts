/**
 * The cost of splitting a pool (BENCHMARKS.md §4, issue 13): the same seeded workload through
 * 3 nodes × 1 device behind a router (`pitcher serve --cluster` ×3, `pitcher route`, a
 * throwaway redis-server) and through 1 node × 3 devices; same models, same memory per
 * device, fresh processes per point (the simulation starts from an empty pool too). Beside
 * each measurement, what the simulator predicts for both (`simulate --nodes 3 --devices 1`
 * and one pool of 3) on this machine's profile.
 *
 *   node --import tsx bench/fleetVsPool.ts --rates 2,4 --duration 60 --ttft 2000
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { runBench } from "../src/cli/bench.ts";
import { prepare } from "../src/cli/plan.ts";
import { simulateFleet } from "../src/sim/fleetSimulation.ts";
import { simulate } from "../src/sim/Simulation.ts";
import { startRedis } from "../test/redisServer.ts";
import { ROOT, startServerProcess } from "./serverProcess.ts";

const opts = new Command()
  .option("--rates <list>", "arrival rates, req/s", "2,4")
  .option("--duration <s>", "seconds per point", "60")
  .option("--ttft <ms>", "TTFT target of every model", "2000")
  .option("--memory <size>", "memory per device", "80MB")
  .option("--profile <file>", "this machine's profile (pitcher profile)", path.join(ROOT, "bench/results/machine-profile.json"))
  .parse()
  .opts();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-fvp-"));
const workloadFile = path.join(dir, "workload.json");
fs.writeFileSync(workloadFile, JSON.stringify({ seed: 7, durationSeconds: Number(opts.duration), inputTokens: 64, outputTokens: 32 }));
const config = (devices: number, cluster?: string) => {
  const file = path.join(dir, `pitcher-${devices}${cluster ? "-node" : ""}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      cacheDir: path.join(ROOT, ".pitcher-cache"),
      scheduler: { policy: "token" },
      devices: { count: devices, memory: opts.memory },
      defaults: { slo: { ttftMs: Number(opts.ttft), tbtMs: 100 } },
      ...(cluster ? { cluster: { url: cluster, heartbeatMs: 500 } } : {}),
    }),
  );
  return file;
};

function startRouter(redisUrl: string): Promise<{ url: string; stop(): void }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "route", "--cluster", redisUrl, "--port", "0"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => {
      const m = /listening on (\S+)/.exec(String(d));
      if (m) resolve({ url: m[1]!, stop: () => child.kill("SIGKILL") });
    });
    child.on("exit", () => reject(new Error("router exited")));
  });
}

async function untilReady(routerUrl: string, nodes: number): Promise<void> {
  for (;;) {
    const h = (await (await fetch(`${routerUrl}/health`)).json()) as { nodes: { state: string }[] };
    if (h.nodes.filter((n) => n.state === "READY").length >= nodes) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const measure = async (url: string, rate: number) => {
  const [row] = await runBench({ url, workload: workloadFile, rates: [rate], ttftMs: Number(opts.ttft), tbtMs: 100, progress: false, drainTimeoutMs: 30_000 });
  return { attainment: row!.overall.attainment, goodput: row!.overall.goodput, requests: row!.overall.requests, ttftP99Ms: row!.overall.ttftP99Ms, errors: row!.errors };
};

const rows = [];
for (const [i, rate] of String(opts.rates).split(",").map(Number).entries()) {
  const p = prepare({ profile: opts.profile, accelerator: "", workload: workloadFile, rate });
  const predictedPool = simulate({ costs: p.costs, slo: p.slo, devices: 3, policy: "token" }, p.requests).report;
  const predictedFleet = simulateFleet({ costs: p.costs, slo: p.slo, nodes: 3, devicesPerNode: 1, policy: "token" }, p.requests).report;
  const runPool = async () => {
    const server = await startServerProcess(config(3));
    try {
      return await measure(server.url, rate);
    } finally {
      await server.stop();
    }
  };
  const runFleet = async () => {
    const redis = await startRedis();
    const nodes = await Promise.all([0, 1, 2].map(() => startServerProcess(config(1, redis.url))));
    const router = await startRouter(redis.url);
    try {
      await untilReady(router.url, 3);
      return await measure(router.url, rate);
    } finally {
      router.stop();
      await Promise.all(nodes.map((n) => n.stop()));
      await redis.stop();
    }
  };
  // Alternate which goes first, so a drift in the machine's load does not favour one.
  let pool: Awaited<ReturnType<typeof measure>>;
  let fleet: Awaited<ReturnType<typeof measure>>;
  if (i % 2 === 0) {
    pool = await runPool();
    fleet = await runFleet();
  } else {
    fleet = await runFleet();
    pool = await runPool();
  }
  const row = {
    rate,
    uptime: os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(" "),
    pool: { predicted: { attainment: predictedPool.attainment, goodput: predictedPool.goodput }, measured: pool },
    fleet: { predicted: { attainment: predictedFleet.attainment, goodput: predictedFleet.goodput }, measured: fleet },
  };
  rows.push(row);
  console.error(JSON.stringify(row));
}
const f = (x: number) => x.toFixed(3);
console.log("| rate/s | requests | 1 node × 3: attainment measured (predicted) | goodput/s | 3 nodes × 1 + router: attainment measured (predicted) | goodput/s | load avg |");
console.log("| -----: | -------: | ---: | ---: | ---: | ---: | --- |");
for (const r of rows)
  console.log(
    `| ${r.rate} | ${r.pool.measured.requests} | ${f(r.pool.measured.attainment)} (${f(r.pool.predicted.attainment)}) | ${r.pool.measured.goodput.toFixed(2)} (${r.pool.predicted.goodput.toFixed(2)}) | ${f(r.fleet.measured.attainment)} (${f(r.fleet.predicted.attainment)}) | ${r.fleet.measured.goodput.toFixed(2)} (${r.fleet.predicted.goodput.toFixed(2)}) | ${r.uptime} |`,
  );
