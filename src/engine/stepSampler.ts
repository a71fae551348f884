/**
 * The worker's plain evaluation step with one sampler kept per sequence (issue 16).
 *
 * node-llama-cpp's `controlledEvaluate` builds a native sampler for every call and frees it
 * after: a candidate buffer of the whole vocabulary allocated and zeroed (384 KB at 32k
 * tokens), the sampler chain built, its repeat-penalty state rebuilt from every punished
 * token, then all of it freed. `llama-server` keeps one sampler per slot. So does this step:
 * it decodes through the sequence's own batching (steps of several sequences issued in the
 * same tick still merge into one batch) and samples with the sequence's kept sampler,
 * reconfigured each step by node-llama-cpp's own option resolution.
 *
 * Reconfiguring keeps the guarantees of a fresh sampler. The addon rebuilds exactly the parts
 * whose settings changed: a new per-token seed gets a new distribution sampler, so a seeded
 * step draws what a fresh sampler would. The repeat-penalty state is compared token by token
 * with the output the step carries (one new token is accepted, any other difference rebuilds
 * it), so a penalized request parked, moved or resumed samples as if never moved, and a slot
 * reused by another request starts from that request's output. The window must not change from
 * step to step for the state to be kept (`generateNext`'s `penaltyWindow`).
 *
 * This reaches into node-llama-cpp 3.22's internals (`_decodeTokens`, `_resolveSamplerConfig`,
 * the addon's `sampleToken`); `StepSamplers` checks they are there when it is built, so a
 * changed node-llama-cpp fails at model load, not mid-request.
 */
import type { ControlledEvaluateIndexOutput, ControlledEvaluateInputItem, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";

type GenerateNext = NonNullable<Extract<ControlledEvaluateInputItem, unknown[]>[1]["generateNext"]>;
export type StepOutput = ControlledEvaluateIndexOutput;

interface NativeSampler {
  applyConfig(config: object): void;
  dispose(): void;
}
type SampleResult = [token: number, probabilities: number[] | undefined, confidence: number | undefined, logits: number[] | undefined, totalLogitWeight: number | undefined];
/** The parts of a node-llama-cpp 3.22 sequence this step uses. */
interface SequenceInternals {
  _decodeTokens(
    tokens: Token[],
    logits: boolean[],
    evaluationPriority: number,
    tokenMeter: unknown,
    contextShiftOptions: unknown,
    logitDataMapper: (batchLogitIndex: number, tokenIndex: number) => Promise<StepOutput>,
    afterBatchAction?: (sequenceStateLength: number) => unknown,
  ): Promise<(StepOutput | undefined)[]>;
  _resolveSamplerConfig(options: NonNullable<GenerateNext["options"]>): object;
  _takeIntervalCheckpointIfNeededAfterBatch(sequenceStateLength: number): unknown;
  _tokenMeter: unknown;
  _contextShift: { size: unknown; strategy: unknown };
  _context: {
    _ctx: {
      sampleToken(
        batchLogitIndex: number,
        sampler: NativeSampler,
        probabilities: boolean,
        confidence: boolean,
        logits: false | [readonly Token[], boolean, boolean, boolean, number],
        totalLogitWeight: boolean,
      ): Promise<SampleResult>;
    };
  };
}

/** node-llama-cpp's default evaluation priority (`controlledEvaluate` uses it too). */
const EVALUATION_PRIORITY = 5;

interface Kept {
  native: NativeSampler;
  /** The seed it was last configured with: the addon only reseeds on a change. */
  seed?: number;
}

/** One model's kept samplers, one per sequence that has stepped. */
export class StepSamplers {
  private readonly samplers = new Map<LlamaContextSequence, Kept>();
  private readonly newSampler: () => NativeSampler;

  constructor(model: LlamaModel) {
    const bindings = (model as unknown as { _llama?: { _bindings?: { AddonSampler?: new (m: unknown) => NativeSampler } } })._llama?._bindings;
    const native = (model as unknown as { _model?: unknown })._model;
    const Sampler = bindings?.AddonSampler;
    if (typeof Sampler !== "function" || native === undefined) throw new Error("node-llama-cpp's internals changed: no AddonSampler to keep per sequence");
    this.newSampler = () => new Sampler(native);
  }

  /**
   * Evaluate `tokens` on `seq` (a final prompt chunk, or the pending output token) and sample
   * the next token with the sequence's kept sampler: what `controlledEvaluate` answers for the
   * last input item, `generateNext` on it.
   */
  async step(seq: LlamaContextSequence, tokens: Token | Token[], generateNext: GenerateNext): Promise<StepOutput> {
    const s = internals(seq);
    const input = Array.isArray(tokens) ? tokens : [tokens];
    const logits = new Array<boolean>(input.length).fill(false);
    logits[input.length - 1] = true;
    let kept = this.samplers.get(seq);
    if (!kept) {
      kept = { native: this.newSampler() };
      this.samplers.set(seq, kept);
    }
    const sampler = kept;
    const filter = typeof generateNext.logits === "object" ? generateNext.logits.filter : undefined;
    const out = await s._decodeTokens(
      input,
      logits,
      EVALUATION_PRIORITY,
      s._tokenMeter,
      { size: s._contextShift.size, strategy: s._contextShift.strategy },
      async (batchLogitIndex) => {
        const options = generateNext.options ?? {};
        const config = s._resolveSamplerConfig(options) as { seed: number };
        // A seeded step draws from a fresh generator: the addon reseeds only when the seed
        // changes, so the same seed twice in a row (another request's last step on this slot
        // had it) is changed and changed back.
        if (options.seed !== undefined && sampler.seed === config.seed) sampler.native.applyConfig({ ...config, seed: (config.seed + 1) >>> 0 });
        sampler.native.applyConfig(config);
        sampler.seed = config.seed;
        const [token, , , topLogits, totalLogitWeight] = await s._context._ctx.sampleToken(
          batchLogitIndex,
          sampler.native,
          false,
          false,
          filter ? [filter.tokens ?? [], filter.includeMax ?? false, filter.includeMin ?? false, filter.includeSelected ?? false, Math.max(0, filter.includeTop ?? 0)] : false,
          generateNext.totalLogitWeight === true,
        );
        const next: StepOutput["next"] = { token: token === -1 ? null : (token as Token) };
        if (topLogits != null) next.logits = pairs(topLogits);
        if (totalLogitWeight != null) next.totalLogitWeight = totalLogitWeight;
        return { next };
      },
      (length) => s._takeIntervalCheckpointIfNeededAfterBatch(length),
    );
    const last = out[input.length - 1];
    if (!last) throw new Error("the step sampled nothing");
    return last;
  }

  /** The model is unloading: its samplers go first (each holds a reference to the model). */
  dispose(): void {
    for (const s of this.samplers.values()) s.native.dispose();
    this.samplers.clear();
  }
}

function internals(seq: LlamaContextSequence): SequenceInternals {
  const s = seq as unknown as Partial<SequenceInternals>;
  if (typeof s._decodeTokens !== "function" || typeof s._resolveSamplerConfig !== "function" || typeof s._context?._ctx?.sampleToken !== "function")
    throw new Error("node-llama-cpp's internals changed: cannot step a sequence with a kept sampler");
  return s as SequenceInternals;
}

/** The addon's flat [token, value, token, value, ...] as a Map, in its order (most likely first). */
function pairs(flat: number[]): Map<Token, number> {
  const m = new Map<Token, number>();
  for (let i = 1; i < flat.length; i += 2) m.set(flat[i - 1] as Token, flat[i]!);
  return m;
}
