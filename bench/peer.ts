/**
 * Pitcher side by side with llama.cpp's own `llama-server` (issue 16; the fairness rules of
 * ../shared/docs/benchmarks.md): the same model files, the same total threads, the same number
 * of models resident at once, the same seeded workload, the same SLOs and the same load client
 * (src/loadgen/loadClient.ts, what `pitcher bench` drives). Each point runs against a fresh
 * server; the two sides alternate, and which goes first alternates from point to point, so
 * drift of a shared, noisy machine falls on both.
 *
 * Three comparisons (`--modes`, any of them, in this order):
 * - `single`: one greedy 512-token stream (64-token prompt), one thread, the scenario's first
 *   model file; decode tokens/s between the first and the last token on the client's clock.
 *   Peer: plain `llama-server -m FILE -t 1 --parallel 1 -c 1024` (llama.cpp's own speed, no
 *   router hop). Pitcher: one device of one thread. Target: Pitcher ÷ llama-server ≥ 0.95.
 * - `sweep`: the scenario at `--rates` with room for two models. Peer: `llama-server` in router
 *   mode (`--models-dir` holding the six scenario files, `--models-max 2`, `-t 1` per model
 *   process, 4 slots × 1024 tokens each). Pitcher: `--policy` on two devices of one thread, a
 *   memory budget that holds one model each (4 sequences × 1024 tokens, as the peer's slots).
 * - `resident`: all six models resident, at `--resident-rates`. Peer: `--models-max 6`.
 *   Pitcher: two devices of one thread with a budget that holds all six.
 *
 * Build the peer first (≈25 minutes on 2 quiet cores; never in CI):
 *   bash bench/buildLlamaServer.sh
 *   node --import tsx bench/peer.ts --scenario P --rates 3,5,6,7,9 --duration 60
 *   node --import tsx bench/peer.ts --modes single --rounds 3
 * Results: bench/results/peer-<scenario>-<time>.{json,md}.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { sloReport } from "../src/core/slo.ts";
import { runLoad } from "../src/loadgen/loadClient.ts";
import { generateWorkload, type WorkloadRequest } from "../src/workload/workload.ts";
import { kneeOf } from "./knee.ts";
import { childPids, cpuMs } from "./processStats.ts";
import { applyScenarioDefaults, isScenario, SCENARIO_DEFAULTS, scenarioModels } from "./scenarios.ts";
import { scenarioWorkload } from "./scenarioWorkload.ts";
import { ROOT, startServerProcess } from "./serverProcess.ts";

const CACHE = path.join(ROOT, ".pitcher-cache");

const program = new Command()
  .option("--scenario <name>", "P (six 58M Q8_0 models) or L (six ≈400M Q8_0 models with a 128k vocabulary, long bursty Zipf load)", "P")
  .option("--modes <list>", "any of single,sweep,resident", "single,sweep,resident")
  .option("--llama-server <file>", "the peer binary", path.join(CACHE, "llama-server", "build", "bin", "llama-server"))
  .option("--peer-args <args>", 'extra llama-server arguments, space-separated (e.g. "-fa off": Pitcher runs without flash attention)', "")
  .option("--policy <name>", "Pitcher's scheduling policy", "token")
  .option("--admission <f>", "Pitcher's scheduler.admissionTtftFactor (default: the server's)", "")
  .option("--late-cap <f>", "Pitcher's scheduler.lateWaitCapFactor, or false (default: the server's)", "")
  .option("--rates <list>", "sweep arrival rates, req/s", "3,5,6,7,9")
  .option("--resident-rates <list>", "all-resident arrival rates, req/s", "8,10,12,14")
  .option("--duration <s>", "seconds per rate", "60")
  .option("--ttft <ms>", "TTFT SLO that scores (the TBT SLO is 100 ms)", "2000")
  .option("--output <n>", "output tokens per request", "32")
  .option("--output-cv <cv>", "log-normal output lengths of this coefficient of variation (0: fixed)", "0")
  .option("--arrival-cv <cv>", "gamma arrivals of this coefficient of variation (1: Poisson)", "1")
  .option("--popularity <kind>", "uniform or zipf", "uniform")
  .option("--memory <size>", "Pitcher's memory budget per device in the sweep (room for one model each)", "80MB")
  .option("--resident-memory <size>", "Pitcher's memory budget per device with all six resident", "500MB")
  .option("--single-tokens <n>", "tokens of the single stream", "512")
  .option("--rounds <n>", "alternating rounds of the single stream", "3")
  .option("--baseline <dir>", "single stream: another Pitcher checkout (an earlier build) run as a third side, alternating with the other two", "")
  .option("--seed <n>", "workload seed", "7")
  .option("--out <prefix>", "result files prefix (default bench/results/peer-<scenario>-<time>)", "")
  .parse();
const opts = program.opts() as Record<string, string>;
if (!isScenario(opts.scenario!) || opts.scenario === "default") throw new Error(`--scenario: P or L, not ${opts.scenario}`);
const scenario = opts.scenario;
applyScenarioDefaults(scenario, opts, (k) => program.getOptionValueSource(k));
const modes = new Set(opts.modes!.split(","));
const bin = path.resolve(opts.llamaServer!);
if (!fs.existsSync(bin)) {
  console.error(`no llama-server at ${bin}; build it first (≈25 min on 2 cores): bash bench/buildLlamaServer.sh`);
  process.exit(1);
}

interface Server {
  url: string;
  stop(): Promise<void>;
  /** The processes that serve (the server and its device workers), for CPU time per token. */
  pids(): number[];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Stop a process group we started (the router and the model processes it spawned). */
function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const done = new Promise<void>((r) => child.on("exit", () => r()));
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, s);
    } catch {
      // The group is already gone.
    }
  };
  signal("SIGTERM");
  const hard = setTimeout(() => signal("SIGKILL"), 10_000);
  return done.finally(() => {
    clearTimeout(hard);
    // Model processes that outlive the router would take CPU from the next point.
    signal("SIGKILL");
  });
}

async function startLlamaServer(args: string[]): Promise<Server> {
  const port = await freePort();
  // An empty cache folder: the router also lists models cached from Hugging Face; none here.
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-peer-"));
  const extra = opts.peerArgs ? opts.peerArgs.split(/\s+/).filter(Boolean) : [];
  // Its log goes to a file, not through this process: the load client shares this process,
  // and reading the router's per-request logging here would slow the client on one side only.
  const logFile = path.join(home, "llama-server.log");
  const log = fs.openSync(logFile, "w");
  const child = spawn(bin, [...args, ...extra, "--host", "127.0.0.1", "--port", String(port), "--no-webui"], {
    stdio: ["ignore", log, log],
    detached: true,
    env: { ...process.env, LLAMA_CACHE: home, HF_HOME: home },
  });
  fs.closeSync(log);
  const logTail = () => fs.readFileSync(logFile, "utf8").slice(-4000);
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<never>((_, reject) => child.on("exit", (code) => reject(new Error(`llama-server exited (${code}): ${logTail()}`))));
  exited.catch(() => {});
  // Ready when /health answers 200 (the router at once; a plain server once its model loaded).
  const deadline = Date.now() + 120_000;
  try {
    for (;;) {
      const ok = await Promise.race([
        fetch(`${url}/health`).then(
          (r) => r.ok,
          () => false,
        ),
        exited,
      ]);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`llama-server not ready after 120 s: ${logTail()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (e) {
    await stopGroup(child);
    fs.rmSync(home, { recursive: true, force: true });
    throw e;
  }
  return { url, stop: () => stopGroup(child).finally(() => fs.rmSync(home, { recursive: true, force: true })), pids: () => [child.pid!] };
}

/** The router serves every .gguf of a folder under its file name: link the scenario's six. */
function modelsDir(models: { id: string; path: string }[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-peer-models-"));
  for (const m of models) fs.symlinkSync(m.path, path.join(dir, `${m.id}.gguf`));
  return dir;
}

async function startPitcher(models: { id: string; path: string }[], devices: number, memory: string, scheduler: Record<string, unknown> = {}, root?: string): Promise<Server> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-peer-"));
  const cfg = path.join(dir, "pitcher.json");
  fs.writeFileSync(
    cfg,
    JSON.stringify({
      cacheDir: CACHE,
      devices: { count: devices, threadsPerDevice: 1, memory },
      scheduler: {
        policy: opts.policy,
        calibrate: true,
        ...(opts.admission ? { admissionTtftFactor: Number(opts.admission) } : {}),
        ...(opts.lateCap ? { lateWaitCapFactor: opts.lateCap === "false" ? false : Number(opts.lateCap) } : {}),
        ...scheduler,
      },
      defaults: { slo: { ttftMs: Number(opts.ttft), tbtMs: 100 }, maxBatch: 4, contextTokens: 1024 },
      models,
    }),
  );
  const server = await startServerProcess(cfg, root);
  return { url: server.url, stop: () => server.stop().finally(() => fs.rmSync(dir, { recursive: true, force: true })), pids: () => [server.pid, ...childPids(server.pid)] };
}

type Side = "peer" | "pitcher" | "baseline";
const order = (i: number): Side[] => (i % 2 === 0 ? ["peer", "pitcher"] : ["pitcher", "peer"]);
const models = scenarioModels(scenario, CACHE);
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
const prefix = opts.out || path.join(ROOT, "bench", "results", `peer-${scenario}-${stamp}`);
const result: Record<string, unknown> = { options: opts, scenarioDefaults: SCENARIO_DEFAULTS[scenario], loadAverage: os.loadavg(), cpus: os.cpus().length };
const md: string[] = [
  `# Pitcher vs llama-server, scenario ${scenario} (${new Date().toISOString()})`,
  "",
  `load average at start: ${os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(" / ")} on ${os.cpus().length} CPUs`,
  "",
];

// ---- single stream -------------------------------------------------------------------------
if (modes.has("single")) {
  const model = models[0]!;
  const tokens = Number(opts.singleTokens);
  const request: WorkloadRequest = { index: 0, modelId: model.id, arrivalMs: 0, inputTokens: 64, outputTokens: tokens };
  const rows: { round: number; side: Side; tokensPerSecond: number; tokens: number; cpuMsPerToken: number }[] = [];
  const baseline = opts.baseline ? path.resolve(opts.baseline) : "";
  // With a baseline, the three sides rotate: each goes first, second and third in turn.
  const sidesOf = (round: number): Side[] => {
    if (!baseline) return order(round);
    const all: Side[] = ["peer", "pitcher", "baseline"];
    return all.map((_, i) => all[(i + round) % 3]!);
  };
  for (let round = 0; round < Number(opts.rounds); round++) {
    for (const side of sidesOf(round)) {
      const server =
        side === "peer"
          ? await startLlamaServer(["-m", model.path, "-t", "1", "-tb", "1", "--parallel", "1", "-c", "1024", "--alias", model.id])
          : // No admission control: one stream measures speed, not SLOs (on a busy machine the
            // calibrated estimates can make admission refuse even a lone request).
            await startPitcher([model], 1, "2GB", { admissionTtftFactor: 0, lateWaitCapFactor: false }, side === "baseline" ? baseline : undefined);
      // CPU time of the serving processes over the request (every thread; the client's is not
      // counted): on a shared machine the wall clock mostly shows the contention.
      const pids = server.pids();
      const cpu0 = pids.reduce((a, p) => a + cpuMs(p), 0);
      const load = await runLoad([request], { baseUrl: server.url, drainTimeoutMs: 120_000 });
      const cpu = pids.reduce((a, p) => a + cpuMs(p), 0) - cpu0;
      await server.stop();
      const t = load.traces[0]!.tokenTimesMs;
      const tps = t.length > 1 ? ((t.length - 1) * 1000) / (t[t.length - 1]! - t[0]!) : 0;
      const cpuMsPerToken = t.length > 0 ? cpu / t.length : 0;
      rows.push({ round, side, tokensPerSecond: tps, tokens: t.length, cpuMsPerToken });
      console.log(
        `single round ${round} ${side.padEnd(8)} ${tps.toFixed(1)} tokens/s (${t.length} tokens) CPU ${cpuMsPerToken.toFixed(2)} ms/token load ${os.loadavg()[0]!.toFixed(1)} errors=${JSON.stringify(load.errors)}`,
      );
    }
  }
  const at = (r: number, s: Side) => rows.find((x) => x.round === r && x.side === s)!;
  const ratios = Array.from({ length: Number(opts.rounds) }, (_, r) => at(r, "pitcher").tokensPerSecond / at(r, "peer").tokensPerSecond);
  const baselineRatios = baseline ? Array.from({ length: Number(opts.rounds) }, (_, r) => at(r, "baseline").tokensPerSecond / at(r, "peer").tokensPerSecond) : undefined;
  result.single = { model: model.id, rows, ratios, ...(baseline ? { baseline, baselineRatios } : {}) };
  md.push(
    `## Single stream: one greedy ${tokens}-token stream, one thread, ${model.id}`,
    "",
    ...(baseline
      ? [
          `Baseline: the Pitcher checkout at \`${baseline}\`.`,
          "",
          "| round | llama-server tokens/s | Pitcher tokens/s | baseline tokens/s | Pitcher ÷ llama-server | baseline ÷ llama-server | CPU ms/token: llama-server / Pitcher / baseline |",
          "|---|---|---|---|---|---|---|",
        ]
      : ["| round | llama-server tokens/s | Pitcher tokens/s | Pitcher ÷ llama-server | CPU ms/token: llama-server / Pitcher |", "|---|---|---|---|---|"]),
  );
  ratios.forEach((ratio, r) => {
    const tps = (s: Side) => at(r, s).tokensPerSecond.toFixed(1);
    const cpu = (s: Side) => at(r, s).cpuMsPerToken.toFixed(2);
    md.push(
      baseline
        ? `| ${r} | ${tps("peer")} | ${tps("pitcher")} | ${tps("baseline")} | ${ratio.toFixed(3)} | ${baselineRatios![r]!.toFixed(3)} | ${cpu("peer")} / ${cpu("pitcher")} / ${cpu("baseline")} |`
        : `| ${r} | ${tps("peer")} | ${tps("pitcher")} | ${ratio.toFixed(3)} | ${cpu("peer")} / ${cpu("pitcher")} |`,
    );
  });
  md.push("", "Target: Pitcher ÷ llama-server ≥ 0.95.", "");
}

// ---- rate sweeps ---------------------------------------------------------------------------
async function sweep(name: string, rates: number[], peerArgs: string[], pitcherMemory: string) {
  const ttftMs = Number(opts.ttft);
  const rows: Record<string, unknown>[] = [];
  const dir = modelsDir(models);
  for (const [i, rate] of rates.entries()) {
    for (const side of order(i)) {
      const server = side === "peer" ? await startLlamaServer(["--models-dir", dir, ...peerArgs]) : await startPitcher(models, 2, pitcherMemory);
      const requests = generateWorkload(
        scenarioWorkload(opts, rate),
        models.map((m) => m.id),
      );
      const load = await runLoad(requests, { baseUrl: server.url, drainTimeoutMs: 30_000 });
      await server.stop();
      const at = (ttft: number) => sloReport(load.traces, () => ({ ttftMs: ttft, tbtMs: 100 }), load.durationMs);
      const main = at(ttftMs);
      const row = {
        side,
        rate,
        requests: main.requests,
        attainment: main.attainment,
        goodput: main.goodput,
        attainmentTtft10s: at(10_000).attainment,
        ttftP50Ms: main.ttftP50Ms,
        ttftP99Ms: main.ttftP99Ms,
        tbtP99Ms: main.tbtP99Ms,
        // Streams that finished with fewer chunks than tokens: llama-server sends no chunk for a
        // token that ends inside a UTF-8 character (a byte token), and the SLO counts a missing
        // token as a miss. Non-zero here means the side's attainment is understated.
        shortStreams: load.traces.filter((t) => t.ok && t.tokenTimesMs.length < (t.expectedTokens ?? 0)).length,
        errors: load.errors,
      };
      rows.push(row);
      console.log(
        `${name} ${side.padEnd(8)} ${String(rate).padStart(4)} req/s  n=${main.requests}  attainment=${main.attainment.toFixed(3)}  goodput=${main.goodput.toFixed(2)}/s  TTFT p50/p99=${main.ttftP50Ms.toFixed(0)}/${main.ttftP99Ms.toFixed(0)} ms  short=${row.shortStreams}  errors=${JSON.stringify(load.errors)}`,
      );
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const of = (side: Side) => rows.filter((r) => r.side === side) as { rate: number; attainment: number; goodput: number; attainmentTtft10s: number }[];
  const knees = { peer: kneeOf(of("peer")), pitcher: kneeOf(of("pitcher")) };
  md.push(
    `| req/s | router attainment | Pitcher \`${opts.policy}\` attainment | router goodput | Pitcher goodput | router attainment (TTFT 10 s) | Pitcher attainment (TTFT 10 s) |`,
    "|---|---|---|---|---|---|---|",
  );
  for (const rate of rates) {
    const [p, q] = [of("peer").find((r) => r.rate === rate)!, of("pitcher").find((r) => r.rate === rate)!];
    md.push(
      `| ${rate} | ${p.attainment.toFixed(3)} | ${q.attainment.toFixed(3)} | ${p.goodput.toFixed(2)} | ${q.goodput.toFixed(2)} | ${p.attainmentTtft10s.toFixed(3)} | ${q.attainmentTtft10s.toFixed(3)} |`,
    );
  }
  const failures = (side: Side) => {
    const r = rows.filter((x) => x.side === side) as { errors: Record<string, number>; shortStreams: number }[];
    const errors: Record<string, number> = {};
    for (const x of r) for (const [k, n] of Object.entries(x.errors)) errors[k] = (errors[k] ?? 0) + n;
    return `errors ${JSON.stringify(errors)}, short streams ${r.reduce((n, x) => n + x.shortStreams, 0)}`;
  };
  md.push("", `90% knee: router ${knees.peer} req/s, Pitcher ${knees.pitcher} req/s.`, "", `Router: ${failures("peer")}. Pitcher: ${failures("pitcher")}.`, "");
  return { rows, knees };
}

const workloadLine = `${opts.duration} s per point, ${opts.popularity} popularity, arrivals CV ${opts.arrivalCv}, ${opts.output} output tokens (CV ${opts.outputCv}), TTFT ${Number(opts.ttft) / 1000} s / TBT 100 ms, seed ${opts.seed}`;
const slots = ["-t", "1", "-tb", "1", "--parallel", "4", "-c", "4096"];
if (modes.has("sweep")) {
  md.push(`## Scenario ${scenario}, room for two: router \`--models-max 2\` vs Pitcher \`${opts.policy}\` (2 devices × 1 thread, ${opts.memory} each)`, "", workloadLine, "");
  result.sweep = await sweep("sweep", opts.rates!.split(",").map(Number), ["--models-max", "2", ...slots], opts.memory!);
}
if (modes.has("resident")) {
  md.push(`## All six resident: router \`--models-max 6\` vs Pitcher (2 devices × 1 thread, ${opts.residentMemory} each)`, "", workloadLine, "");
  result.resident = await sweep("resident", opts.residentRates!.split(",").map(Number), ["--models-max", "6", ...slots], opts.residentMemory!);
}

fs.mkdirSync(path.dirname(prefix), { recursive: true });
fs.writeFileSync(`${prefix}.json`, JSON.stringify(result, null, 2));
fs.writeFileSync(`${prefix}.md`, `${md.join("\n")}\n`);
console.log(`wrote ${prefix}.json and ${prefix}.md`);
