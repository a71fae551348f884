/**
 * What a model switch costs on this machine: load a GGUF file the way Pitcher's device worker
 * does (mmap, a context of 4 sequences × 1024 tokens, one thread), then two decode steps;
 * wall and CPU time of each part, three times per file. CPU time (`process.cpuUsage`, native
 * threads included) stays meaningful on a machine shared with other work, where the wall
 * clock mostly shows the contention.
 *
 *   node --import tsx bench/loadCost.ts .pitcher-cache/bench/p58m-0.gguf .pitcher-cache/bench/l400m-0.gguf
 *   PITCHER_BENCH_GPU=cuda node --import tsx bench/loadCost.ts big.gguf     # loads onto a GPU (bench/gpu.sh)
 */
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const gpu = (process.env.PITCHER_BENCH_GPU ?? "false") === "false" ? false : (process.env.PITCHER_BENCH_GPU as "cuda" | "vulkan" | "metal" | "auto");
const llama = await getLlama({ build: "never", gpu, maxThreads: 1, logLevel: LlamaLogLevel.error, progressLogs: false, skipDownload: true });
if (gpu && llama.gpu === false) throw new Error(`PITCHER_BENCH_GPU=${gpu}: node-llama-cpp found no usable ${gpu} build`);
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const part = (w: number[], c: number[], i: number) => `${(w[i + 1]! - w[i]!).toFixed(0)}/${(c[i + 1]! - c[i]!).toFixed(0)} ms`;

for (const file of process.argv.slice(2)) {
  for (let round = 1; round <= 3; round++) {
    const wall = [performance.now()];
    const cpu = [cpuMs()];
    const mark = () => {
      wall.push(performance.now());
      cpu.push(cpuMs());
    };
    const model = await llama.loadModel({ modelPath: file, useMmap: true });
    mark();
    const context = await model.createContext({ contextSize: 1024, sequences: 4, threads: 1, flashAttention: false });
    mark();
    const steps = context.getSequence().evaluate(model.tokenize("the pool of models"), {});
    await steps.next(); // the prompt and the first token: touches every weight page
    mark();
    await steps.next();
    mark();
    await steps.return(undefined);
    await context.dispose();
    await model.dispose();
    console.log(
      `${file.split("/").pop()} #${round}  wall/CPU: loadModel ${part(wall, cpu, 0)}  createContext ${part(wall, cpu, 1)}  first step ${part(wall, cpu, 2)}  next step ${part(wall, cpu, 3)}`,
    );
  }
}
