/**
 * Logprobs in OpenAI's two wire shapes: chat's `logprobs.content[]` (token, logprob, bytes,
 * top_logprobs) and the legacy completions' parallel lists (tokens, token_logprobs,
 * top_logprobs, text_offset). Both are built token by token, so a stream's chunks carry
 * the entries of their own tokens.
 */
import type { TokenLogprob } from "../runtime/Serving.ts";

/** What OpenAI reports for a token that cannot be drawn (a banned or cut-off one). */
const IMPOSSIBLE_LOGPROB = -9999;

const finite = (logprob: number): number => (Number.isFinite(logprob) ? logprob : IMPOSSIBLE_LOGPROB);

export interface ChatLogprobs {
  content: { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number; bytes: number[] }[] }[];
  refusal: null;
}

export function chatLogprobs(tokens: TokenLogprob[]): ChatLogprobs {
  return {
    content: tokens.map((t) => ({
      token: t.token,
      logprob: finite(t.logprob),
      bytes: t.bytes,
      top_logprobs: t.top.map((x) => ({ token: x.token, logprob: finite(x.logprob), bytes: x.bytes })),
    })),
    refusal: null,
  };
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  /** The asked-for most likely tokens, and always the sampled one (as OpenAI does). */
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

/** `offset`: where the first token's text starts in the choice's text (a stream's chunks continue it). */
export function completionLogprobs(tokens: TokenLogprob[], offset = 0): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let at = offset;
  for (const t of tokens) {
    out.tokens.push(t.token);
    out.token_logprobs.push(finite(t.logprob));
    // A token's text may be any string, "__proto__" too: a map without a prototype.
    const top = Object.create(null) as Record<string, number>;
    for (const x of t.top) if (!(x.token in top)) top[x.token] = finite(x.logprob);
    if (!(t.token in top)) top[t.token] = finite(t.logprob);
    out.top_logprobs.push(top);
    out.text_offset.push(at);
    at += t.token.length;
  }
  return out;
}
