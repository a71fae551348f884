/**
 * Constrained output in the device worker: the compiled grammars, each request's grammar
 * state, and the step that samples under it (core's `Sampling.grammar`, issue 11).
 *
 * The worker's plain step, `controlledEvaluate`, takes no grammar; `evaluate`'s generator
 * does. A constrained step opens that generator on the sequence's pending tokens, takes the one
 * token it samples and closes it: the same sampler options and per-token seed as a plain step,
 * with the grammar masking the tokens it does not allow. Sampling accepts the token into the
 * state (natively), and decode steps of several sequences still merge into one batch.
 *
 * A grammar state is a function of the tokens generated so far. It is kept here per request
 * and rebuilt from those tokens whenever it is missing or stale: after a swap-in (on this
 * device or another), a model reload or a worker restart. The tokens are in the restored
 * sequence (its context ends with every output token but the newest, which the decode step
 * carries), so the scheduler knows nothing of grammars, and a constrained request preempted
 * anywhere samples exactly what it samples alone.
 *
 * The end: JSON schemas compile without node-llama-cpp's tail of four newlines (its LlamaChat
 * stops on those), so once the value is complete the grammar allows only end-of-generation
 * tokens; the sampler takes one and the request stops there.
 *
 * Non-ASCII byte tokens (a vocabulary's byte fallback, `<0xE2>`) are never sampled under a
 * grammar: llama.cpp's grammar reads UTF-8 loosely, so byte tokens could spell an invalid
 * sequence (a surrogate, a lead byte past 0xF4, an overlong form) that it counts as one
 * character and the text shows as several U+FFFD: a string past its maxLength, or a value
 * outside its enum. Non-ASCII text comes from the vocabulary's whole-character tokens.
 */
import {
  LlamaGrammarEvaluationState,
  TokenBias,
  type GbnfJsonSchema,
  type Llama,
  type LlamaContextSequence,
  type LlamaGrammar,
  type LlamaModel,
  type SequenceEvaluateOptions,
  type Token,
} from "node-llama-cpp";
import type { OutputGrammar } from "../core/devicePort.ts";
import { jsonSchemaGbnf } from "./jsonSchemaGbnf.ts";
import type { ModelId, RequestId } from "../core/types.ts";

/** What a constrained step needs of a resident model. */
export interface GrammarModel {
  id: ModelId;
  model: LlamaModel;
  /** The end tokens the server knows; an end-of-generation token outside them is reported as one of them. */
  endTokens: ReadonlySet<number>;
}

export type StepOptions = Omit<SequenceEvaluateOptions, "grammarEvaluationState" | "yieldEogToken">;

/** `{ kind: "json" }` without a schema: any JSON value (an array without items holds any values). */
const ANY_JSON: GbnfJsonSchema = { oneOf: [{ type: "object", additionalProperties: true }, { type: "array" }, { type: ["string", "number", "boolean", "null"] }] };

/** Compiled grammars kept per cache (distinct schemas are few in practice; this bounds the rest). */
const CACHE_ENTRIES = 64;

interface HeldState {
  modelId: ModelId;
  /** Output tokens the state has accepted: the index of the token it samples next. */
  accepted: number;
  state: LlamaGrammarEvaluationState;
}

export class OutputGrammars {
  /** GBNF text per `OutputGrammar` (JSON schemas are turned into GBNF once). */
  private readonly texts = new Lru<string, string>(CACHE_ENTRIES);
  /** Parsed grammars per GBNF text. */
  private readonly grammars = new Lru<string, LlamaGrammar>(CACHE_ENTRIES);
  /** A fresh state per (model, GBNF text); each request starts from a clone. */
  private readonly initial = new Lru<string, LlamaGrammarEvaluationState>(CACHE_ENTRIES);
  private readonly states = new Map<RequestId, HeldState>();
  /** Per model: a bias that bans its non-ASCII byte tokens, and those tokens. */
  private readonly byteBans = new Map<ModelId, { bias: TokenBias; tokens: Token[] }>();
  /** Each model's non-ASCII byte tokens, kept across unloads (a model id names one file; a scan of 32k tokens takes a while). */
  private readonly byteTokens = new Map<ModelId, Token[]>();

  constructor(private readonly llama: Llama) {}

  /**
   * Evaluate `input` on `seq` and sample output token `tokenIndex` of `requestId` under its
   * grammar. `input` is the final prompt chunk (`tokenIndex` 0) or the newest output token.
   */
  async sample(
    m: GrammarModel,
    requestId: RequestId,
    seq: LlamaContextSequence,
    input: Token[],
    tokenIndex: number,
    grammar: OutputGrammar,
    options: StepOptions,
  ): Promise<number> {
    const held = await this.stateAt(m, requestId, seq, input, tokenIndex, grammar);
    const generator = seq.evaluate(input, { ...options, tokenBias: this.withByteBan(m, options.tokenBias), grammarEvaluationState: held.state, yieldEogToken: true });
    let token: Token | undefined;
    try {
      token = (await generator.next()).value ?? undefined;
    } finally {
      await generator.return(undefined);
    }
    if (token === undefined) throw new Error(`a constrained step sampled no token for ${requestId}`);
    if (!m.model.isEogToken(token)) {
      held.accepted++;
      return token;
    }
    this.states.delete(requestId);
    if (m.endTokens.has(token)) return token;
    const end = m.endTokens.values().next();
    return end.done ? token : end.value;
  }

  /** The request's sequence was released or parked: its state goes (it is rebuilt if it comes back). */
  release(requestId: RequestId): void {
    this.states.delete(requestId);
  }

  /** A model was unloaded: its states go before its native memory does. */
  unloadModel(modelId: ModelId): void {
    for (const [id, held] of this.states) if (held.modelId === modelId) this.states.delete(id);
    this.initial.deleteWhere((key) => key.startsWith(`${modelId}\0`));
    this.byteBans.delete(modelId);
  }

  /** The step's token bias, with the model's non-ASCII byte tokens banned. */
  private withByteBan(m: GrammarModel, bias: StepOptions["tokenBias"]): TokenBias {
    let ban = this.byteBans.get(m.id);
    if (!ban) {
      let tokens = this.byteTokens.get(m.id);
      if (!tokens) {
        tokens = [];
        for (const t of m.model.iterateAllTokens()) if (m.model.getTokenAttributes(t).byte && m.model.detokenize([t]) === "\ufffd") tokens.push(t);
        this.byteTokens.set(m.id, tokens);
      }
      ban = { bias: new TokenBias(m.model.tokenizer).set(tokens, "never"), tokens };
      this.byteBans.set(m.id, ban);
    }
    if (bias === undefined) return ban.bias;
    // The step's own bias (e.g. logit_bias) is built for this step: it may take the ban too.
    const own = typeof bias === "function" ? bias() : bias;
    return ban.tokens.length > 0 ? own.set(ban.tokens, "never") : own;
  }

  private async stateAt(m: GrammarModel, requestId: RequestId, seq: LlamaContextSequence, input: Token[], tokenIndex: number, grammar: OutputGrammar): Promise<HeldState> {
    const held = this.states.get(requestId);
    if (held && held.modelId === m.id && held.accepted === tokenIndex) return held;
    // Output tokens 0..tokenIndex-1: all but the newest are the end of the sequence's context; the newest is `input`.
    const inContext = tokenIndex - 1;
    const generated = tokenIndex === 0 ? [] : [...seq.contextTokens.slice(seq.contextTokens.length - inContext), ...input];
    if (generated.length !== tokenIndex || inContext > seq.contextTokens.length)
      throw new Error(`cannot rebuild the grammar state of ${requestId}: ${tokenIndex} tokens generated, its sequence holds ${seq.contextTokens.length}`);
    const state = new LlamaGrammarEvaluationState(await this.initialState(m, grammar));
    for (const t of generated) acceptToken(this.llama, state, t);
    const rebuilt = { modelId: m.id, accepted: tokenIndex, state };
    this.states.set(requestId, rebuilt);
    return rebuilt;
  }

  private async initialState(m: GrammarModel, grammar: OutputGrammar): Promise<LlamaGrammarEvaluationState> {
    const text = await this.gbnf(grammar);
    const key = `${m.id}\0${text}`;
    let state = this.initial.get(key);
    if (!state) {
      let compiled = this.grammars.get(text);
      if (!compiled) {
        compiled = await this.llama.createGrammar({ grammar: text });
        this.grammars.set(text, compiled);
      }
      state = new LlamaGrammarEvaluationState({ model: m.model, grammar: compiled });
      this.initial.set(key, state);
    }
    return state;
  }

  private async gbnf(grammar: OutputGrammar): Promise<string> {
    if (grammar.kind === "gbnf") return grammar.text;
    const key = JSON.stringify(grammar.schema ?? null);
    let text = this.texts.get(key);
    if (text === undefined) {
      text = jsonSchemaGbnf(this.llama, (grammar.schema as GbnfJsonSchema | undefined) ?? ANY_JSON);
      this.texts.set(key, text);
    }
    return text;
  }
}

interface GrammarBindings {
  AddonSampler: { acceptGrammarEvaluationStateToken(state: unknown, token: number): void };
}

/**
 * Advance a grammar state by a token without sampling (rebuilding it). node-llama-cpp does
 * this internally (`LlamaSampler._acceptTokenOnGrammarEvaluationState`) but exports no way.
 */
function acceptToken(llama: Llama, state: LlamaGrammarEvaluationState, token: number): void {
  const bindings = (llama as unknown as { _bindings: GrammarBindings })._bindings;
  const native = (state as unknown as { _state: unknown })._state;
  bindings.AddonSampler.acceptGrammarEvaluationStateToken(native, token);
}

/** A Map that forgets its least recently used entry past `limit`. */
class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly limit: number) {}

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.limit) this.map.delete(this.map.keys().next().value as K);
  }

  deleteWhere(test: (key: K) => boolean): void {
    for (const k of [...this.map.keys()]) if (test(k)) this.map.delete(k);
  }
}
