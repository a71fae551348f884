/**
 * A device worker: one child process per device, owning one node-llama-cpp instance. It
 * runs exactly the commands it is sent, one at a time, and answers each once. A native
 * abort here takes down only this process; the server fails this device's requests and
 * starts a new worker.
 *
 * Thread budget: the parent sets UV_THREADPOOL_SIZE and `threads`; every context uses the
 * same count, and only one command runs at a time, so the busy threads never exceed it.
 */
import fs from "node:fs/promises";
import { getLlama, LlamaLogLevel, type Llama, type Token, type LlamaContext, type LlamaContextSequence, type LlamaModel } from "node-llama-cpp";
import type { TokenLogprobs } from "../core/devicePort.ts";
import type { ModelId, RequestId } from "../core/types.ts";
import { BatchModeChooser } from "./batchMode.ts";
import { embedChunk, isEmbedder, loadEmbedder, releaseEmbeddings, unloadEmbedder } from "./embedding.ts";
import { OutputGrammars } from "./grammarState.ts";
import { kvPaths, KvStateError, sealKvState, verifyKvState } from "./kvStateFile.ts";
import { generateNext, readLogprobs } from "./samplingOptions.ts";
import { skipResourceSimulation } from "./skipResourceSimulation.ts";
import { type StepOutput, StepSamplers } from "./stepSampler.ts";
import type { WorkerCommand, WorkerInit, WorkerMessage, WorkerProgress, WorkerReply, WorkerResult } from "./protocol.ts";

interface LoadedModel {
  model: LlamaModel;
  endTokens: Set<number>;
  context: LlamaContext;
  fingerprint: string;
  contextTokens: number;
  free: LlamaContextSequence[];
  byRequest: Map<RequestId, LlamaContextSequence>;
  /** Whether a decode step of n sequences runs as one batch or one sequence at a time. */
  batchModes: BatchModeChooser;
  /** One sampler kept per sequence, as llama-server keeps one per slot (not one built per step). */
  samplers: StepSamplers;
}

let llama: Llama | undefined;
let init: WorkerInit | undefined;
/** Constrained output (`Sampling.grammar`): compiled grammars and each request's state. */
let grammars: OutputGrammars | undefined;
const models = new Map<ModelId, LoadedModel>();

function send(reply: WorkerReply | WorkerProgress): void {
  // The server may have closed the channel (shutdown, restart): nothing left to tell.
  if (process.connected) process.send!(reply);
}

/** A step's sampled token, and its logprobs when the request asked for them. */
function sampledOf(out: StepOutput | undefined, logprobsK: number | undefined, what: string): { token: number; logprobs: TokenLogprobs | null } {
  const token = out?.next?.token;
  if (token === undefined || token === null) throw new Error(`${what} produced no token`);
  return { token, logprobs: logprobsK === undefined ? null : readLogprobs(out!.next, token, logprobsK) };
}

function loaded(modelId: ModelId): LoadedModel {
  const m = models.get(modelId);
  if (!m) throw new Error(`model ${modelId} is not loaded on this device`);
  return m;
}

function sequenceFor(m: LoadedModel, requestId: RequestId): LlamaContextSequence {
  let seq = m.byRequest.get(requestId);
  if (seq) return seq;
  seq = m.free.pop();
  if (!seq) throw new Error(`no free sequence slot for ${requestId}`);
  m.byRequest.set(requestId, seq);
  return seq;
}

async function releaseSequence(m: LoadedModel, requestId: RequestId): Promise<void> {
  const seq = m.byRequest.get(requestId);
  if (!seq) return;
  m.byRequest.delete(requestId);
  grammars?.release(requestId);
  await seq.clearHistory();
  m.free.push(seq);
}

async function release(requestIds: RequestId[]): Promise<void> {
  releaseEmbeddings(requestIds);
  for (const id of requestIds) for (const m of models.values()) await releaseSequence(m, id);
}

async function unload(modelId: ModelId): Promise<void> {
  if (await unloadEmbedder(modelId)) return;
  const m = models.get(modelId);
  if (!m) return;
  models.delete(modelId);
  grammars?.unloadModel(modelId);
  m.samplers.dispose();
  await m.context.dispose();
  await m.model.dispose();
}

/** Requests cancelled while a command runs (client gone, stop string seen). */
const cancelled = new Set<RequestId>();
/** New work waits for this device: the running decode ends after its current step. */
let yieldRequested = false;

async function run(id: number, cmd: WorkerCommand): Promise<WorkerResult> {
  const kvDir = init!.kvDir;
  switch (cmd.op) {
    case "load": {
      for (const id of cmd.evict) await unload(id);
      if (models.has(cmd.modelId) || isEmbedder(cmd.modelId)) return {};
      if (cmd.embedding) {
        await loadEmbedder(llama!, { modelId: cmd.modelId, path: cmd.path, contextTokens: cmd.contextTokens, threads: init!.threads });
        return {};
      }
      const model = await llama!.loadModel({ modelPath: cmd.path, useMmap: true });
      try {
        const context = await model.createContext({
          contextSize: cmd.contextTokens,
          sequences: cmd.slots,
          threads: init!.threads,
          batchSize: cmd.batchTokens,
          flashAttention: false,
        });
        const free: LlamaContextSequence[] = [];
        for (let i = 0; i < cmd.slots; i++) free.push(context.getSequence());
        free.reverse();
        models.set(cmd.modelId, {
          model,
          endTokens: new Set(cmd.endTokens),
          context,
          fingerprint: cmd.fingerprint,
          contextTokens: cmd.contextTokens,
          free,
          byRequest: new Map(),
          batchModes: new BatchModeChooser(),
          samplers: new StepSamplers(model),
        });
      } catch (e) {
        await model.dispose();
        throw e;
      }
      return {};
    }
    case "evict":
      for (const id of cmd.modelIds) await unload(id);
      return {};
    case "prefill": {
      if (cmd.embed || isEmbedder(cmd.modelId)) {
        const embedding = await embedChunk(cmd);
        return embedding ? { embedding } : {};
      }
      const m = loaded(cmd.modelId);
      const seq = sequenceFor(m, cmd.requestId);
      if (!cmd.final) {
        await seq.controlledEvaluate(cmd.tokens as Token[]);
        return {};
      }
      if (cmd.sampling.grammar) {
        const token = await grammars!.sample(
          { id: cmd.modelId, ...m },
          cmd.requestId,
          seq,
          cmd.tokens as Token[],
          0,
          cmd.sampling.grammar,
          generateNext(m.model, cmd.sampling, 0, [], m.contextTokens).options ?? {},
        );
        return { tokens: [token] };
      }
      const out = await m.samplers.step(seq, cmd.tokens as Token[], generateNext(m.model, cmd.sampling, 0, [], m.contextTokens));
      const first = sampledOf(out, cmd.sampling.logprobs, "prefill");
      return { tokens: [first.token], ...(first.logprobs ? { logprobs: [first.logprobs] } : {}) };
    }
    case "decode": {
      const m = loaded(cmd.modelId);
      // Our own copy (parsed from the message): outputs grow in place as steps sample.
      let items = cmd.items;
      let step = 0;
      // Steps' tokens go out together at most every `progressEveryMs`, and at the end.
      let pending: WorkerProgress["progress"] = [];
      let lastSent = performance.now();
      const flush = () => {
        if (pending.length) send({ id, progress: pending });
        pending = [];
        lastSent = performance.now();
      };
      // One sequence's step: feed its pending token, sample the next.
      const evaluate = async (it: (typeof items)[number]) => {
        const seq = sequenceFor(m, it.requestId);
        const { grammar } = it.sampling;
        if (grammar) {
          const token = await grammars!.sample(
            { id: cmd.modelId, ...m },
            it.requestId,
            seq,
            [it.token as Token],
            it.tokenIndex,
            grammar,
            generateNext(m.model, it.sampling, it.tokenIndex, it.output, m.contextTokens).options ?? {},
          );
          return { next: { token: token as Token } };
        }
        return m.samplers.step(seq, it.token as Token, generateNext(m.model, it.sampling, it.tokenIndex, it.output, m.contextTokens));
      };
      for (; step < cmd.steps && items.length > 0; step++) {
        const mode = m.batchModes.choose(items.length);
        const t0 = performance.now();
        let results: Awaited<ReturnType<typeof evaluate>>[];
        // Issued in the same tick, the sequences' evaluations merge into one batch.
        if (mode === "batched") results = await Promise.all(items.map(evaluate));
        else {
          results = [];
          for (const it of items) results.push(await evaluate(it));
        }
        m.batchModes.observe(items.length, mode, performance.now() - t0);
        const sampled = results.map((r, i) => sampledOf(r, items[i]!.sampling.logprobs, `decode of ${items[i]!.requestId}`));
        const tokens = sampled.map((x) => x.token);
        const withLogprobs = sampled.some((x) => x.logprobs);
        pending.push({ requestIds: items.map((it) => it.requestId), tokens, ...(withLogprobs ? { logprobs: sampled.map((x) => x.logprobs) } : {}) });
        for (const [i, it] of items.entries()) it.output?.push(tokens[i]!);
        if (performance.now() - lastSent >= cmd.progressEveryMs) flush();
        // Sequences that ended (end token) or were cancelled leave the batch.
        items = items.map((it, i) => ({ ...it, token: tokens[i]!, tokenIndex: it.tokenIndex + 1 })).filter((it, i) => !m.endTokens.has(tokens[i]!) && !cancelled.has(it.requestId));
        if (yieldRequested) {
          step++;
          break;
        }
      }
      flush();
      return { steps: step };
    }
    case "swapOut": {
      const m = loaded(cmd.modelId);
      let bytes = 0;
      for (const id of cmd.requestIds) {
        const seq = m.byRequest.get(id);
        if (!seq) throw new Error(`swap out: ${id} holds no sequence`);
        const p = kvPaths(kvDir, id);
        await seq.saveStateToFile(p.state);
        bytes += await sealKvState(kvDir, id, m.fingerprint, seq.contextTokens.length);
        await releaseSequence(m, id);
      }
      return { bytes };
    }
    case "swapIn": {
      const m = loaded(cmd.modelId);
      let bytes = 0;
      const failed: { requestId: RequestId; error: string }[] = [];
      for (const id of cmd.requestIds) {
        try {
          const header = await verifyKvState(kvDir, id, m.fingerprint, m.contextTokens);
          const seq = sequenceFor(m, id);
          await seq.loadStateFromFile(kvPaths(kvDir, id).state, { acceptRisk: true });
          bytes += header.bytes;
          await fs.rm(kvPaths(kvDir, id).state, { force: true });
          await fs.rm(kvPaths(kvDir, id).header, { force: true });
        } catch (e) {
          if (!(e instanceof KvStateError)) throw e;
          await releaseSequence(m, id);
          failed.push({ requestId: id, error: e.message });
        }
      }
      return { bytes, ...(failed.length ? { failed } : {}) };
    }
    case "release":
      await release(cmd.requestIds);
      return {};
  }
}

let queue: Promise<void> = Promise.resolve();

process.on("message", (msg: WorkerMessage) => {
  if ("cancel" in msg) {
    for (const r of msg.cancel) cancelled.add(r);
    return;
  }
  if ("yield" in msg) {
    yieldRequested = true;
    return;
  }
  // One command at a time, in order: the scheduler never sends a second before the first
  // answers, but releases may arrive alone.
  queue = queue.then(async () => {
    const t0 = performance.now();
    try {
      if ("init" in msg) {
        init = msg.init;
        await fs.mkdir(init.kvDir, { recursive: true });
        llama = await getLlama({
          build: "never",
          gpu: init.gpu,
          maxThreads: init.threads,
          logLevel: LlamaLogLevel.error,
          progressLogs: false,
          skipDownload: true,
        });
        // A CPU device has no layers to fit and budgets memory in the server's ledger.
        if (llama.gpu === false) skipResourceSimulation();
        grammars = new OutputGrammars(llama);
        send({ id: msg.id, ok: true, durationMs: performance.now() - t0, result: {} });
        return;
      }
      await release(msg.release);
      const result = await run(msg.id, msg.command);
      cancelled.clear();
      // Cleared when a command ends, not when it starts: a yield may arrive before its decode does.
      yieldRequested = false;
      send({ id: msg.id, ok: true, durationMs: performance.now() - t0, result });
    } catch (e) {
      send({ id: msg.id, ok: false, error: (e as Error).message, code: "engine_error" });
    }
  });
});

process.on("disconnect", () => process.exit(0));
// A send racing the channel's close fails with EPIPE: the server is gone, so is our work.
process.on("error", () => process.exit(0));
