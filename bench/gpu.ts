/**
 * GPU readiness (issue 16): the overhead and policies benchmarks on an NVIDIA GPU, in one go,
 * with stand-ins of a few billion parameters so that a model switch costs what it costs on
 * real hardware. Nothing is compiled: node-llama-cpp's prebuilt CUDA binary
 * (`@node-llama-cpp/linux-x64-cuda`, an optional dependency that a full `npm ci` installs) is
 * what `getLlama({ gpu: "cuda", build: "never" })` loads, in this process for the probe and in
 * every device worker (`devices.gpu: cuda`).
 *
 * Steps, each logged to its own file in the results folder; a failed step is recorded and the
 * next one still runs:
 * 1. probe: the GPU node-llama-cpp finds (`env.json`: its kind, device names, VRAM, nvidia-smi).
 * 2. stand-ins: `--models` dense llama Q8_0 files of `--shape` (3b: ≈3.6B parameters, 3.8 GB;
 *    8b: ≈8B), written in parallel by the repo's GGUF writer under `.pitcher-cache/bench/`
 *    (kept for the next run: the same seeds write the same bytes).
 * 3. `loadCost.ts`: a switch's parts on the device (load from the page cache, context, steps).
 * 4. `overhead.ts`: one greedy stream through Pitcher against a plain node-llama-cpp loop.
 * 5. `policies.ts`: the policies at `--rates` on one device whose budget holds two of the
 *    models (a switch evicts one), so switching is on the path.
 *
 *   bash bench/gpu.sh                       # on the GPU machine (see gpu.sh)
 *   bash bench/gpu.sh --dry-run             # anywhere: tiny stand-ins, one short point of each, on CPU
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { type StandInModelShape, standInParameterCount, writeStandInModel } from "../src/engine/gguf/writeStandInModel.ts";
import { ROOT } from "./serverProcess.ts";

type ShapeName = "3b" | "8b" | "tiny";
const SHAPES: Record<ShapeName, Omit<StandInModelShape, "name" | "seed">> = {
  // Llama 3.2 3B's shape (untied output), 128k vocabulary.
  "3b": { embeddingLength: 3072, blockCount: 28, headCount: 24, headCountKv: 8, feedForwardLength: 8192, vocabularySize: 128000, contextLength: 4096, weightType: "q8_0" },
  // Llama 3.1 8B's shape.
  "8b": { embeddingLength: 4096, blockCount: 32, headCount: 32, headCountKv: 8, feedForwardLength: 14336, vocabularySize: 128000, contextLength: 4096, weightType: "q8_0" },
  // The dry run's: the same code path, seconds to write.
  tiny: { embeddingLength: 256, blockCount: 2, headCount: 4, headCountKv: 2, feedForwardLength: 512, vocabularySize: 4000, contextLength: 2048, weightType: "q8_0" },
};
/** Each server's sequences per model and their length (the KV cache the budget must hold). */
const MAX_BATCH = 4;
const CONTEXT_TOKENS = 1024;

const program = new Command()
  .option("--dry-run", "on CPU: tiny stand-ins, one short point of each benchmark (checks everything but the GPU)")
  .option("--gpu <kind>", "node-llama-cpp's GPU kind", "cuda")
  .option("--shape <name>", "stand-in shape: 3b or 8b", "3b")
  .option("--models <n>", "stand-ins to write and serve", "4")
  .option("--rates <list>", "policies: arrival rates, req/s", "1,2,4,8")
  .option("--duration <s>", "policies: seconds per rate", "60")
  .option("--policies <list>", "policies to compare", "token,request")
  .option("--tokens <n>", "overhead: tokens per stream", "512")
  .option("--rounds <n>", "overhead: alternated rounds", "5")
  .option("--memory <size>", "the device's budget (default: room for two of the models, KV included)")
  .option("--out <dir>", "results folder (default bench/results/gpu-<time>)")
  .option("--write-one <json>", "internal: write one stand-in ({shape, file}) and exit")
  .parse();
const opts = program.opts() as Record<string, string | boolean | undefined>;

if (typeof opts.writeOne === "string") {
  const { shape, file } = JSON.parse(opts.writeOne) as { shape: StandInModelShape; file: string };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeStandInModel(shape, file);
  process.exit(0);
}

const dry = opts.dryRun === true;
const gpu = dry ? false : (String(opts.gpu) as "cuda" | "vulkan" | "metal" | "auto");
const shapeName: ShapeName = dry ? "tiny" : (String(opts.shape) as ShapeName);
if (!(shapeName in SHAPES)) throw new Error(`--shape: 3b or 8b, not ${shapeName}`);
const count = dry ? 2 : Number(opts.models);
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
const out = path.resolve(String(opts.out ?? path.join(ROOT, "bench", "results", `gpu-${dry ? "dry-run-" : ""}${stamp}`)));
fs.mkdirSync(out, { recursive: true });
const summary: string[] = [`# GPU benchmarks${dry ? " (dry run, on CPU)" : ""}, ${new Date().toISOString()}`, ""];
const note = (line: string) => {
  console.log(line);
  summary.push(line);
};

/** Run a command with its output to `<out>/<name>.txt` (and this terminal); resolves to its exit code. */
function step(name: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  const log = fs.createWriteStream(path.join(out, `${name}.txt`));
  const started = Date.now();
  note(
    `- ${name}: \`node ${args.join(" ")}\`${
      Object.keys(env).length
        ? ` (${Object.entries(env)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ")})`
        : ""
    }`,
  );
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    for (const s of [child.stdout, child.stderr]) {
      s.on("data", (d: Buffer) => {
        log.write(d);
        process.stdout.write(d);
      });
    }
    child.on("exit", (code) => {
      log.end();
      note(`  exit ${code}, ${((Date.now() - started) / 1000).toFixed(0)} s`);
      resolve(code ?? 1);
    });
  });
}

// 1. The probe.
const env: Record<string, unknown> = {
  dryRun: dry,
  requestedGpu: gpu,
  node: process.version,
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  memoryBytes: os.totalmem(),
  loadAverage: os.loadavg(),
};
if (!dry) {
  env.nvidiaSmi = await new Promise<string>((resolve) => {
    const c = spawn("nvidia-smi", ["--query-gpu=name,memory.total,driver_version", "--format=csv"], { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    c.stdout.on("data", (d) => (text += d));
    c.on("error", (e) => resolve(`nvidia-smi failed: ${e.message}`));
    c.on("exit", () => resolve(text.trim()));
  });
}
try {
  const llama = await getLlama({ build: "never", gpu, skipDownload: true, logLevel: LlamaLogLevel.error, progressLogs: false });
  env.gpu = llama.gpu;
  env.gpuDevices = await llama.getGpuDeviceNames();
  env.vram = await llama.getVramState();
  await llama.dispose();
} catch (e) {
  env.probeError = (e as Error).message;
}
fs.writeFileSync(path.join(out, "env.json"), JSON.stringify(env, null, 2));
note(`GPU: ${String(env.gpu ?? "none")} ${JSON.stringify(env.gpuDevices ?? [])}${env.probeError ? `, probe failed: ${env.probeError}` : ""}`);
if (!dry && env.gpu !== gpu) {
  note(`node-llama-cpp did not load its ${gpu} build (is @node-llama-cpp/linux-x64-cuda installed, with a driver?): stopping.`);
  fs.writeFileSync(path.join(out, "summary.md"), `${summary.join("\n")}\n`);
  process.exit(1);
}

// 2. The stand-ins, written in parallel (each writer is single-threaded JavaScript).
const shape = SHAPES[shapeName];
const files = Array.from({ length: count }, (_, i) => path.join(ROOT, ".pitcher-cache", "bench", `gpu-${shapeName}-${i}.gguf`));
const t0 = Date.now();
await Promise.all(
  files.map((file, i) =>
    fs.existsSync(file)
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          const c = spawn(
            process.execPath,
            ["--import", "tsx", "bench/gpu.ts", "--write-one", JSON.stringify({ shape: { ...shape, name: path.basename(file, ".gguf"), seed: 1000 + i }, file })],
            {
              cwd: ROOT,
              stdio: "inherit",
            },
          );
          c.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`writing ${file}: exit ${code}`))));
        }),
  ),
);
const fileBytes = fs.statSync(files[0]!).size;
const kvBytes = shape.blockCount * 2 * shape.headCountKv * (shape.embeddingLength / shape.headCount) * 2 * CONTEXT_TOKENS * MAX_BATCH;
const memory = String(opts.memory ?? `${Math.ceil((2 * (fileBytes + kvBytes) * 1.05) / 1e6)}MB`);
note(
  `Stand-ins: ${count} × ${shapeName} (${(standInParameterCount({ ...shape, name: "", seed: 0 }) / 1e6).toFixed(0)}M parameters, ${(fileBytes / 1e6).toFixed(0)} MB each), ready in ${((Date.now() - t0) / 1000).toFixed(0)} s. Device budget: ${memory} (room for two, KV of ${MAX_BATCH} × ${CONTEXT_TOKENS} tokens each included).`,
);
note("");

// 3–5. The benchmarks, one after another (each alone on the device).
const gpuArg = String(gpu);
const codes: Record<string, number> = {};
codes.loadCost = await step("loadCost", ["--import", "tsx", "bench/loadCost.ts", ...files.slice(0, 2)], { PITCHER_BENCH_GPU: gpuArg });
codes.overhead = await step("overhead", [
  "--import",
  "tsx",
  "bench/overhead.ts",
  "--file",
  files[0]!,
  "--gpu",
  gpuArg,
  "--memory",
  memory,
  "--tokens",
  dry ? "32" : String(opts.tokens),
  "--rounds",
  dry ? "1" : String(opts.rounds),
]);
codes.policies = await step("policies", [
  "--import",
  "tsx",
  "bench/policies.ts",
  "--model-files",
  files.join(","),
  "--gpu",
  gpuArg,
  "--devices",
  "1",
  "--memory",
  memory,
  "--context",
  String(CONTEXT_TOKENS),
  "--policies",
  dry ? "token" : String(opts.policies),
  "--rates",
  dry ? "1" : String(opts.rates),
  "--duration",
  dry ? "5" : String(opts.duration),
  "--out",
  path.join(out, "policies.json"),
]);
note("");
note(`Exit codes: ${JSON.stringify(codes)}. Results: ${out}`);
fs.writeFileSync(path.join(out, "summary.md"), `${summary.join("\n")}\n`);
process.exit(Object.values(codes).every((c) => c === 0) ? 0 : 1);
