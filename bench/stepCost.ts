/**
 * Where a decode step's time goes in the device worker (issue 16): one greedy stream on one
 * thread, in this process, through each way of stepping node-llama-cpp, alternated in rounds.
 *
 * - `controlled`: `controlledEvaluate` per step, as the worker stepped before issue 16 (it
 *   builds and frees a sampler, with a vocabulary-sized candidate buffer, every call).
 * - `kept`: the worker's step now (`stepSampler.ts`): one sampler kept per sequence.
 * - `generator`: node-llama-cpp's `evaluate` generator (one sampler for the generator's life).
 * - `raw`: the addon's own calls (batch, decode, sample) with nothing around them: the floor
 *   of a step from JS.
 *
 *   node --import tsx bench/stepCost.ts --model .pitcher-cache/bench/p58m-0.gguf --tokens 256 --rounds 5
 */
import { Command } from "commander";
import { getLlama, LlamaLogLevel, type LlamaContextSequence, type Token } from "node-llama-cpp";
import { StepSamplers } from "../src/engine/stepSampler.ts";

const opts = new Command()
  .requiredOption("--model <file>", "GGUF file")
  .option("--tokens <n>", "tokens per run", "256")
  .option("--rounds <n>", "alternations", "5")
  .option("--slots <n>", "sequences of the context (the worker's maxBatch)", "4")
  .option("--variants <list>", "controlled,kept,generator,raw", "controlled,kept,generator,raw")
  .parse()
  .opts();
const N = Number(opts.tokens);
const llama = await getLlama({ build: "never", gpu: false, maxThreads: 1, logLevel: LlamaLogLevel.error, progressLogs: false, skipDownload: true });
const model = await llama.loadModel({ modelPath: opts.model, useMmap: true });
const context = await model.createContext({ contextSize: 1024, sequences: Number(opts.slots), threads: 1, flashAttention: false });
const seq = context.getSequence();
const prompt = model.tokenize("Once upon a time, a pool of devices served many models");
const greedy = { token: true, options: { temperature: 0 } } as const;
const samplers = new StepSamplers(model);

type Variant = (first: Token) => Promise<void>;
const variants: Record<string, Variant> = {
  async controlled(first) {
    let t = first;
    for (let i = 1; i < N; i++) t = (await seq.controlledEvaluate([[t, { generateNext: greedy }]]))[0]!.next!.token!;
  },
  async kept(first) {
    let t = first;
    for (let i = 1; i < N; i++) t = (await samplers.step(seq, t, greedy)).next.token!;
  },
  async generator(first) {
    const g = seq.evaluate([first], { temperature: 0 });
    for (let i = 1; i < N; i++) await g.next();
    await g.return(undefined);
  },
  async raw(first) {
    // The addon's calls on the sequence's slot, outside node-llama-cpp's bookkeeping (the
    // sequence's token list is not kept: this run's history is cleared after it).
    const ctx = (context as unknown as { _ctx: RawContext })._ctx;
    const sampler = new (llama as unknown as { _bindings: { AddonSampler: new (m: unknown) => RawSampler } })._bindings.AddonSampler(
      (model as unknown as { _model: unknown })._model,
    );
    sampler.applyConfig({ temperature: 0 });
    const sequenceId = (seq as unknown as { _sequenceId: number })._sequenceId;
    let pos = seq.nextTokenIndex;
    let t = first as number;
    for (let i = 1; i < N; i++) {
      ctx.initBatch(1);
      const [logitIndex] = ctx.addToBatch(sequenceId, pos++, Uint32Array.of(t), Uint32Array.of(0));
      await ctx.decodeBatch();
      t = (await ctx.sampleToken(logitIndex!, sampler))[0];
    }
    sampler.dispose();
  },
};
interface RawContext {
  initBatch(size: number): void;
  addToBatch(sequenceId: number, firstTokenIndex: number, tokens: Uint32Array, logits: Uint32Array): Uint32Array;
  decodeBatch(): Promise<void>;
  sampleToken(logitIndex: number, sampler: RawSampler): Promise<[number]>;
}
interface RawSampler {
  applyConfig(config: object): void;
  dispose(): void;
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
/** Wall tokens/s, and CPU ms per token (every thread of this process): on a shared machine the wall clock mostly shows the contention. */
async function measure(name: string, s: LlamaContextSequence): Promise<{ tps: number; cpu: number }> {
  await s.clearHistory();
  const out = await s.controlledEvaluate([...prompt.slice(0, -1), [prompt.at(-1)!, { generateNext: greedy }]]);
  const [t0, c0] = [performance.now(), cpuMs()];
  await variants[name]!(out.at(-1)!.next.token!);
  return { tps: ((N - 1) * 1000) / (performance.now() - t0), cpu: (cpuMs() - c0) / (N - 1) };
}

const names = (opts.variants as string).split(",");
for (const n of names) await measure(n, seq); // warm
const rows: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
const cpu: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
for (let r = 0; r < Number(opts.rounds); r++) {
  const order = r % 2 === 0 ? names : [...names].reverse();
  for (const n of order) {
    const m = await measure(n, seq);
    rows[n]!.push(m.tps);
    cpu[n]!.push(m.cpu);
  }
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const base = rows[names[0]!]!;
console.log(`${opts.model}, ${N} tokens, 1 thread, ${opts.slots} slots, ${opts.rounds} alternated rounds`);
for (const n of names) {
  const paired = median(rows[n]!.map((x, i) => x / base[i]!));
  console.log(
    `${n.padEnd(10)} ${rows[n]!.map((x) => x.toFixed(1)).join(", ")} tok/s  median ${median(rows[n]!).toFixed(1)}  ms/token ${(1000 / median(rows[n]!)).toFixed(3)}  paired ÷ ${names[0]} ${paired.toFixed(3)}  CPU ms/token ${median(cpu[n]!).toFixed(3)}`,
  );
}
samplers.dispose();
await context.dispose();
await model.dispose();
