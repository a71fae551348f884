/**
 * The cap on a prompt's text, checked before any tokenizing or templating: the work those
 * do grows with the text, so a client cannot buy seconds of CPU with one large body.
 */
import { PromptTooLargeError } from "../core/errors.ts";

/** What is measured: chat messages' text, or a completion prompt (token ids are not text). */
type PromptInput = { kind: "chat"; messages: { content: string }[] } | { kind: "completion"; prompt: string | number[] };

/** UTF-8 bytes of the prompt's text; stops counting once past `limitBytes`. */
export function promptBytes(input: PromptInput, limitBytes: number): number {
  if (input.kind === "completion") return typeof input.prompt === "string" ? Buffer.byteLength(input.prompt) : 0;
  let total = 0;
  for (const m of input.messages) {
    total += Buffer.byteLength(m.content);
    if (total > limitBytes) break;
  }
  return total;
}

/** Throws `PromptTooLargeError` (413, naming both sizes) for a prompt over `limitBytes`. */
export function refuseOversizedPrompt(input: PromptInput, limitBytes: number | undefined): void {
  if (limitBytes === undefined) return;
  const bytes = promptBytes(input, limitBytes);
  if (bytes > limitBytes) throw new PromptTooLargeError(bytes, limitBytes, input.kind === "chat" ? "messages" : "prompt");
}
