/**
 * Tool calling on the OpenAI wire: the request fields (`tools`, `tool_choice`,
 * `parallel_tool_calls`, assistant `tool_calls` and `role: "tool"` messages), checking them,
 * and turning the model's output (written in its call syntax, constrained by a grammar the
 * codec built) back into `message.tool_calls` or streamed `delta.tool_calls`.
 *
 * Calls are recognised only at the very start of the output: that is where the grammar
 * allows them (with `tool_choice: "auto"` the output is either calls or text that does not
 * start like one), so every call returned had its arguments constrained to its schema.
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { ChatMessage, ChatToolsRequest, ToolCallSyntax } from "../core/codec.ts";
import { InvalidRequestError, UnsupportedOptionError } from "../core/errors.ts";
import { grammarSchema } from "./responseFormat.ts";

const functionName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "a function name is 1 to 64 letters, digits, underscores or dashes");

const toolCall = z.object({ id: z.string().min(1), type: z.literal("function"), function: z.object({ name: functionName, arguments: z.string() }) });

/** The tool fields of a chat message (merged into the message schema). */
export const toolMessageFields = {
  tool_calls: z.array(toolCall).nullish(),
  tool_call_id: z.string().nullish(),
};

/** The tool fields of a chat request body. */
export const toolBodyFields = {
  tools: z
    .array(
      z.object({
        type: z.literal("function"),
        function: z.object({ name: functionName, description: z.string().nullish(), parameters: z.record(z.unknown()).nullish(), strict: z.boolean().nullish() }),
      }),
    )
    .nullish(),
  tool_choice: z.union([z.enum(["none", "auto", "required"]), z.object({ type: z.literal("function"), function: z.object({ name: z.string() }) })]).nullish(),
  parallel_tool_calls: z.boolean().nullish(),
};

type ToolBody = { [K in keyof typeof toolBodyFields]?: z.infer<(typeof toolBodyFields)[K]> | undefined } & {
  response_format?: { type: string } | null | undefined;
  logprobs?: boolean | null | undefined;
};
type WireMessage = {
  role: ChatMessage["role"];
  content?: string | { text: string }[] | null | undefined;
  tool_calls?: z.infer<typeof toolCall>[] | null | undefined;
  tool_call_id?: string | null | undefined;
};

/**
 * OpenAI messages as the codec's chat messages, checking (as OpenAI does) that tool messages
 * answer calls made just before them and that every call is answered before the next turn.
 */
export function chatMessages(messages: WireMessage[]): ChatMessage[] {
  const calls = new Set<string>();
  const pending = new Map<string, number>(); // call id → the index of the message that made it
  const unanswered = (): void => {
    for (const [id, i] of pending) throw new InvalidRequestError(`Tool call ${JSON.stringify(id)} has no tool message answering it`, `messages.${i}.tool_calls`);
  };
  const out = messages.map((m, i): ChatMessage => {
    const content = typeof m.content === "string" ? m.content : (m.content ?? []).map((p) => p.text).join("");
    if (m.role === "tool") {
      if (!m.tool_call_id) throw new InvalidRequestError("A tool message needs tool_call_id, the id of the call it answers", `messages.${i}.tool_call_id`);
      if (!calls.has(m.tool_call_id))
        throw new InvalidRequestError(`tool_call_id ${JSON.stringify(m.tool_call_id)} answers no tool call of an earlier assistant message`, `messages.${i}.tool_call_id`);
      pending.delete(m.tool_call_id);
      return { role: "tool", content, toolCallId: m.tool_call_id };
    }
    unanswered();
    if (m.role === "assistant" && m.tool_calls?.length) {
      for (const c of m.tool_calls) {
        calls.add(c.id);
        pending.set(c.id, i);
      }
      return { role: "assistant", content, toolCalls: m.tool_calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })) };
    }
    return { role: m.role, content };
  });
  unanswered();
  return out;
}

/** The tools a request offers and how, or undefined when it offers none (no tools, or `tool_choice: "none"`). */
export function toolsRequest(body: ToolBody): ChatToolsRequest | undefined {
  const tools = body.tools ?? [];
  const choice = body.tool_choice ?? "auto";
  if (tools.length === 0) {
    if (choice !== "none" && choice !== "auto") throw new InvalidRequestError("tool_choice needs tools to choose from", "tool_choice");
    return undefined;
  }
  const names = new Set<string>();
  const functions = tools.map((t, i) => {
    const f = t.function;
    if (names.has(f.name)) throw new InvalidRequestError(`Two tools are named ${f.name}`, `tools.${i}.function.name`);
    names.add(f.name);
    const parameters = f.parameters ?? { type: "object", properties: {} };
    const at = `tools.${i}.function.parameters`;
    if (parameters.type !== "object") throw new InvalidRequestError("A function's parameters must be a JSON schema of type object", at);
    // Checked keyword by keyword as response_format's schemas are: what the grammar would not enforce is refused by name.
    const argumentsSchema = grammarSchema(parameters, at);
    return { name: f.name, ...(f.description ? { description: f.description } : {}), parameters, argumentsSchema };
  });
  if (choice === "none") return undefined;
  // Both would constrain the same output; a call's arguments already follow their schema.
  if (body.response_format && body.response_format.type !== "text")
    throw new UnsupportedOptionError("response_format together with tools is not supported: tool arguments already follow their schemas", "response_format");
  // The grammar samples through node-llama-cpp's `evaluate`, which reports no logits.
  if (body.logprobs === true) throw new UnsupportedOptionError("logprobs together with tools is not supported by Pitcher", "logprobs");
  if (typeof choice === "object" && !names.has(choice.function.name))
    throw new InvalidRequestError(`tool_choice names ${choice.function.name}, which is not among the tools`, "tool_choice");
  return { functions, choice: typeof choice === "object" ? { name: choice.function.name } : choice, parallel: body.parallel_tool_calls ?? true };
}

/** The calls that `text` is, or undefined when it is not calls (text, or calls cut short). */
export function parseToolCalls(text: string, syntax: ToolCallSyntax, names: string[]): { name: string; arguments: string }[] | undefined {
  const r = new Reader(text, syntax.specialTexts);
  const section = syntax.parallel;
  if (section && !r.literal(section.sectionPrefix)) return undefined;
  const calls: { name: string; arguments: string }[] = [];
  for (;;) {
    if (!r.literal(syntax.callPrefix)) return undefined;
    // Longest first: one name may be the start of another.
    const name = [...names].sort((a, b) => b.length - a.length).find((n) => r.ahead(n) && r.literalAt(n.length, syntax.paramsPrefix.replaceAll("{{functionName}}", n)));
    if (name === undefined) return undefined;
    r.skip(name.length);
    r.literal(syntax.paramsPrefix.replaceAll("{{functionName}}", name));
    const args = r.json();
    if (args === undefined || !r.literal(syntax.callSuffix.replaceAll("{{functionName}}", name))) return undefined;
    calls.push({ name, arguments: JSON.stringify(args) });
    if (!section) break;
    // Another call follows only where the separator, a call's prefix and a name do (a prefix
    // of special tokens alone shows as nothing).
    const mark = r.mark();
    const another = r.literal(section.betweenCalls) && r.literal(syntax.callPrefix) && names.some((n) => r.ahead(n));
    r.reset(mark);
    if (!another) break;
    r.literal(section.betweenCalls);
  }
  if (section) r.literal(section.sectionSuffix, true);
  return r.rest().trim() === "" && calls.length > 0 ? calls : undefined;
}

/** Reads output text against the syntax's literals, each of which may show its special tokens or not. */
class Reader {
  private pos = 0;
  constructor(
    private readonly text: string,
    private readonly specialTexts: string[],
  ) {}

  mark(): number {
    return this.pos;
  }
  reset(mark: number): void {
    this.pos = mark;
  }
  rest(): string {
    return this.text.slice(this.pos);
  }
  ahead(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }
  skip(n: number): void {
    this.pos += n;
  }
  /** The literal's forms: as written, and with its special tokens shown as nothing. */
  private forms(lit: string): string[] {
    const plain = withoutSpecials(lit, this.specialTexts);
    return plain === lit ? [lit] : [lit, plain];
  }
  literalAt(offset: number, lit: string): boolean {
    return this.forms(lit).some((f) => this.text.startsWith(f, this.pos + offset));
  }
  /** Consume `lit` if it comes next; `mayBeCut`: the text may end inside it (at a stop). */
  literal(lit: string, mayBeCut = false): boolean {
    for (const f of this.forms(lit)) {
      if (this.text.startsWith(f, this.pos)) {
        this.pos += f.length;
        return true;
      }
      const rest = this.rest();
      if (mayBeCut && f.startsWith(rest)) {
        this.pos = this.text.length;
        return true;
      }
    }
    return false;
  }
  /** A JSON object or array starting here. */
  json(): unknown {
    const end = jsonEnd(this.text, this.pos);
    if (end === undefined) return undefined;
    try {
      const value: unknown = JSON.parse(this.text.slice(this.pos, end));
      this.pos = end;
      return value;
    } catch {
      return undefined;
    }
  }
}

/** `text` as output shows it when its special tokens are sampled as such (they detokenize to nothing). */
function withoutSpecials(text: string, specialTexts: string[]): string {
  // Longest first: one special text may contain another (`</function>` holds `>`).
  return [...specialTexts].sort((a, b) => b.length - a.length).reduce((s, special) => s.replaceAll(special, ""), text);
}

/** Where the JSON object or array that starts at `from` ends (brackets outside strings). */
function jsonEnd(text: string, from: number): number | undefined {
  if (text[from] !== "{" && text[from] !== "[") return undefined;
  let depth = 0;
  let inString = false;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return undefined;
}

/** OpenAI's shape of a call, with a fresh id. */
export function wireToolCalls(calls: { name: string; arguments: string }[]): { id: string; type: "function"; function: { name: string; arguments: string } }[] {
  return calls.map((c) => ({ id: `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`, type: "function", function: c }));
}

/** The chat message and finish reason of a finished generation that was offered tools. */
export function toolAnswer(
  text: string,
  finishReason: string,
  syntax: ToolCallSyntax,
  names: string[],
): { message: { role: "assistant"; content: string | null; tool_calls?: ReturnType<typeof wireToolCalls> }; finish_reason: string } {
  const calls = parseToolCalls(text, syntax, names);
  if (!calls) return { message: { role: "assistant", content: text }, finish_reason: finishReason };
  return { message: { role: "assistant", content: null, tool_calls: wireToolCalls(calls) }, finish_reason: "tool_calls" };
}

/**
 * Streamed output of a request offered tools. Pieces pass as `content` deltas once the text
 * can no longer be the start of a call; a call is held back and sent whole at the end as
 * `tool_calls` deltas (name first, then its arguments), as the `openai` client assembles them.
 */
export class ToolCallStream {
  private held = "";
  private state: "deciding" | "text" | "calls" = "deciding";
  private readonly starts: string[];

  constructor(
    private readonly syntax: ToolCallSyntax,
    private readonly names: string[],
  ) {
    // How calls start: with the prefix as written or as shown without its special tokens
    // (possibly nothing), then a function's name.
    const start = (syntax.parallel?.sectionPrefix ?? "") + syntax.callPrefix;
    const forms = new Set([start, withoutSpecials(start, syntax.specialTexts)]);
    this.starts = [...forms].flatMap((f) => names.map((n) => f + n));
  }

  /** The deltas to send for this piece (none while it is held back). */
  push(piece: string): object[] {
    if (this.state === "text") return piece ? [{ content: piece }] : [];
    this.held += piece;
    if (this.state === "calls") return [];
    if (this.starts.some((s) => this.held.startsWith(s))) {
      this.state = "calls";
      return [];
    }
    if (this.starts.some((s) => s.startsWith(this.held))) return [];
    this.state = "text";
    const out = this.held;
    this.held = "";
    return out ? [{ content: out }] : [];
  }

  /** At the end: the deltas still due and the finish reason. */
  end(finishReason: string): { deltas: object[]; finishReason: string } {
    if (this.state === "text") return { deltas: [], finishReason };
    const calls = parseToolCalls(this.held, this.syntax, this.names);
    if (!calls) return { deltas: this.held ? [{ content: this.held }] : [], finishReason };
    const deltas = wireToolCalls(calls).flatMap((c, index) => [
      { tool_calls: [{ index, id: c.id, type: "function", function: { name: c.function.name, arguments: "" } }] },
      { tool_calls: [{ index, function: { arguments: c.function.arguments } }] },
    ]);
    return { deltas, finishReason: "tool_calls" };
  }
}

/** The functions' names, for parsing. */
export function toolNames(tools: ChatToolsRequest | undefined): string[] {
  return tools?.functions.map((f) => f.name) ?? [];
}
