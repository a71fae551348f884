/**
 * The GBNF grammar a tool-calling request's output must follow: calls written in the model's
 * syntax (`ToolCallSyntax`), each naming an offered function and carrying arguments that
 * match that function's JSON schema; with `tool_choice: "auto"`, any text that does not
 * start like a call instead.
 *
 * Each function's arguments grammar is node-llama-cpp's own JSON-schema grammar (the same
 * subset `response_format` uses), its rules renamed per function so several fit in one file.
 */
import type { Llama } from "node-llama-cpp";
import type { ChatToolsRequest, ToolCallSyntax, ToolFunction } from "../core/codec.ts";
import { jsonSchemaGbnf } from "./jsonSchemaGbnf.ts";

/**
 * Most calls in one turn. The grammar lets a model stop after any call, and trained models do;
 * one with random weights rarely would, so without a bound it writes calls until `max_tokens`.
 */
export const MAX_PARALLEL_CALLS = 8;

export function toolCallGrammar(llama: Llama, syntax: ToolCallSyntax, request: ChatToolsRequest): string {
  const choice = request.choice;
  const functions = typeof choice === "object" ? request.functions.filter((f) => f.name === choice.name) : request.functions;
  if (functions.length === 0) throw new Error(`tool_choice names ${JSON.stringify((choice as { name: string }).name)}, which is not among the tools`);
  const rules: string[] = [];
  const alternatives = functions.map((f, i) => {
    rules.push(...argumentsRules(llama, f, `f${i}-`));
    const named = (s: string) => s.replaceAll("{{functionName}}", f.name);
    return seq(literal(f.name), literal(named(syntax.paramsPrefix)), `f${i}-root`, literal(named(syntax.callSuffix)));
  });
  rules.push(`call ::= ${seq(literal(syntax.callPrefix), `( ${alternatives.join(" | ")} )`)}`);
  const section = syntax.parallel;
  if (section) {
    const more = request.parallel ? `( ${seq(literal(section.betweenCalls), "call")} ){0,${MAX_PARALLEL_CALLS - 1}}` : "";
    rules.push(`calls ::= ${seq(literal(section.sectionPrefix), "call", more, literal(section.sectionSuffix))}`);
  } else rules.push("calls ::= call");
  if (choice === "auto") {
    rules.push("root ::= calls | text", ...notStartingWith("text", (section?.sectionPrefix ?? "") + syntax.callPrefix));
  } else rules.push("root ::= calls");
  return rules.join("\n");
}

/** The function's arguments grammar as rules (`<prefix>root` and the rules it uses). */
function argumentsRules(llama: Llama, f: ToolFunction, prefix: string): string[] {
  return jsonSchemaGbnf(llama, (f.argumentsSchema ?? f.parameters) as never)
    .split("\n")
    .map((line) => renameRules(line, prefix));
}

/** Prefix every rule name (outside string literals and character classes) in a GBNF text. */
export function renameRules(gbnf: string, prefix: string): string {
  return gbnf.replace(/"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|[A-Za-z][A-Za-z0-9-]*/g, (token) => (token[0] === '"' || token[0] === "[" ? token : prefix + token));
}

/** A GBNF string literal (empty text: nothing). */
export function literal(text: string): string {
  if (text === "") return "";
  return `"${[...text].map(escapeChar).join("")}"`;
}

function seq(...parts: string[]): string {
  return parts.filter((p) => p !== "").join(" ");
}

function escapeChar(c: string): string {
  if (c === '"' || c === "\\") return `\\${c}`;
  const code = c.codePointAt(0)!;
  if (code < 0x20 || code === 0x7f) return `\\x${code.toString(16).padStart(2, "0")}`;
  return c;
}

/** A character class of everything but `c`. */
function allBut(c: string): string {
  const code = c.codePointAt(0)!;
  return code > 0xffff ? `[^\\U${code.toString(16).padStart(8, "0")}]` : `[^\\u${code.toString(16).padStart(4, "0")}]`;
}

/**
 * Rules for `name`: any text (the empty one included) that does not start with `start`. Once
 * the text leaves `start`'s first characters, anything may follow.
 */
export function notStartingWith(name: string, start: string): string[] {
  const chars = [...start];
  const rules = [`${name}-any ::= [^\\x00]*`];
  if (chars.length === 0) return [...rules, `${name} ::= ${name}-any`];
  // Level k: the text so far equals start's first k characters; it may end there.
  for (let k = 0; k < chars.length; k++) {
    const here = k === 0 ? name : `${name}-${k}`;
    const deeper = k + 1 < chars.length ? ` | ${literal(chars[k]!)} ${name}-${k + 1}` : "";
    rules.push(`${here} ::= ( ${allBut(chars[k]!)} ${name}-any${deeper} )?`);
  }
  return rules;
}
