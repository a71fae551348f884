/**
 * One sampling step's `generateNext` for node-llama-cpp's `controlledEvaluate`, built from the
 * request's `Sampling`, and the log-probabilities read back from its answer. Everything a step
 * depends on travels with it, so a kept sampler (`stepSampler.ts`) samples what a fresh one would:
 * the step seed (from the base seed and the token's index) and the output so far (for
 * penalties). That is what keeps sampled output exact when a request is parked, moved to
 * another device or resumed after its model was reloaded.
 */
import { type ControlledEvaluateIndexOutput, type ControlledEvaluateInputItem, type LlamaModel, type Token, TokenBias } from "node-llama-cpp";
import { samplingReadsOutput, type Sampling, type TokenLogprobs } from "../core/devicePort.ts";

type GenerateNext = NonNullable<Extract<ControlledEvaluateInputItem, unknown[]>[1]["generateNext"]>;
type StepOptions = NonNullable<GenerateNext["options"]>;

/** A bias at or below this bans the token (OpenAI: "-100 should result in a ban"). */
const BAN_BIAS = -100;

/**
 * `output`: the request's output so far (only read when penalties are set). `tokenIndex`:
 * the index of the token this step samples. `penaltyWindow`: at least the longest output
 * (the sequence's context size); the same every step, so a kept sampler keeps its penalty
 * state and accepts one token per step instead of rebuilding it (`stepSampler.ts`).
 */
export function generateNext(model: LlamaModel, s: Sampling, tokenIndex: number, output: readonly number[] | undefined, penaltyWindow: number): GenerateNext {
  const options: StepOptions = { temperature: Math.max(0, s.temperature) };
  if (s.temperature > 0) {
    if (s.topP !== undefined) options.topP = s.topP;
    if (s.topK !== undefined) options.topK = s.topK;
    if (s.minP !== undefined) options.minP = s.minP;
    // A per-token seed makes sampled output independent of when the request was preempted.
    if (s.seed !== undefined) options.seed = (s.seed + tokenIndex * 7919) >>> 0;
  }
  if (samplingReadsOutput(s)) {
    const punish = (output ?? []) as Token[];
    options.repeatPenalty = {
      punishTokens: punish,
      // The whole output is in the window (OpenAI's penalties count every generated token).
      maxPunishTokens: Math.max(1, penaltyWindow, punish.length),
      penalty: s.repeatPenalty ?? 1,
      presencePenalty: s.presencePenalty ?? 0,
      frequencyPenalty: s.frequencyPenalty ?? 0,
    };
  }
  if (s.logitBias?.length) options.tokenBias = tokenBias(model, s.logitBias);
  const next: GenerateNext = { token: true, options };
  if (s.logprobs !== undefined) {
    // Only the top few logits come back, with the sum that normalizes them: never the whole
    // vocabulary's probabilities. Asking for any top entry makes llama.cpp sort the
    // candidates: the whole vocabulary when greedy (sampling's top-k already sorted its
    // few). Greedy picks the most likely token, so the sampled token alone, unsorted, gives
    // its logprob when no alternatives are asked for.
    const includeTop = s.logprobs === 0 && s.temperature <= 0 ? 0 : Math.max(1, s.logprobs);
    next.logits = { filter: { tokens: [], includeSelected: true, includeTop } };
    next.totalLogitWeight = true;
  }
  return next;
}

function tokenBias(model: LlamaModel, pairs: [number, number][]): TokenBias {
  const bias = new TokenBias(model.tokenizer);
  const ends: [number, number][] = [];
  for (const [token, offset] of pairs) {
    const logit = offset <= BAN_BIAS ? Number.NEGATIVE_INFINITY : offset;
    if (model.isEogToken(token as Token)) ends.push([token, logit]);
    else bias.set(token as Token, { logit });
  }
  if (ends.length > 0) {
    // `TokenBias.set` skips end-of-generation tokens, but a client may bias them like any
    // other (OpenAI does): write them into the map node-llama-cpp 3.22 reads.
    const map = (bias as unknown as { _biases?: unknown })._biases;
    if (!(map instanceof Map)) throw new Error("node-llama-cpp's TokenBias changed: cannot bias an end-of-generation token");
    for (const [token, logit] of ends) map.set(token, logit);
  }
  return bias;
}

/**
 * The sampled token's log-probability and the top `k` tokens', from the step's top logits
 * and their normalizer (sum of exp(logit - max) over the distribution sampled from).
 */
export function readLogprobs(next: ControlledEvaluateIndexOutput["next"], token: number, k: number): TokenLogprobs {
  const logits = next.logits;
  const weight = next.totalLogitWeight;
  if (!logits || weight === undefined) throw new Error("the step returned no logits for logprobs");
  // The top entries come first, most likely first; with none asked (greedy), the only entry
  // is the sampled token, the most likely one.
  const entries = [...logits.entries()];
  const maxLogit = entries[0]![1];
  const logNormalizer = Math.log(weight);
  // Never above 0 (float noise could push the top token's a hair over).
  const logprob = (logit: number) => Math.min(0, logit - maxLogit - logNormalizer);
  const selected = logits.get(token as Token);
  return {
    logprob: selected === undefined ? Number.NEGATIVE_INFINITY : logprob(selected),
    // The selected token comes after the top ones when it is not among them.
    top: entries.slice(0, k).map(([t, l]) => ({ token: t, logprob: logprob(l) })),
  };
}
