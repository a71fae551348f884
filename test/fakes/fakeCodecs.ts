/**
 * A text codec for tests: every token is a word (`t<id>` after a space), prompts are words
 * turned into tokens by a hash. Enough for stop strings and streamed deltas to be checked.
 */
import type { ChatMessage, Codecs, ModelCodec } from "../../src/core/codec.ts";

// `satisfies`: tests read the prompts at once (the port allows them to be asynchronous).
export const fakeCodec = {
  completionPrompt: (text: string): number[] => text.split(/\s+/).filter(Boolean).map(wordToken),
  chatPrompt: (messages: ChatMessage[]) => ({ tokens: messages.flatMap((m) => m.content.split(/\s+/).filter(Boolean).map(wordToken)), stopStrings: [] }),
  detokenize: (tokens: number[]) => tokens.map((t) => ` t${t}`).join(""),
} satisfies ModelCodec;

export const fakeCodecs: Codecs = {
  get: () => fakeCodec,
  dispose: async () => {},
};

function wordToken(word: string): number {
  let h = 7;
  for (const c of word) h = (h * 31 + c.charCodeAt(0)) % 997;
  return 1 + h;
}
