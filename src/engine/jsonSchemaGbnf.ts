/**
 * GBNF for a JSON schema (node-llama-cpp's subset, checked by the API), ending where the
 * value does, with node-llama-cpp 3.22.1's number rules bounded. Shared by structured output
 * (`grammarState.ts`) and tool-call arguments (`toolGrammar.ts`).
 */
import { type GbnfJsonSchema, type Llama, LlamaJsonSchemaGrammar } from "node-llama-cpp";

/** What node-llama-cpp 3.22.1 appends to a JSON schema's root rule for LlamaChat to stop on. */
const NEWLINES_TAIL = ' "\\n\\n\\n\\n" [\\n]*';
/**
 * Its numbers' exponents have up to 16 digits: `1e-1` passes as an integer, and `1e999`
 * parses as Infinity, which no JSON-schema number is. Integers are written without an
 * exponent and other numbers with at most two digits of one (±1e115 at most: finite).
 */
const NUMBER = '"-"? ("0" | [1-9] [0-9]{0,15})';
const EXPONENT = ' ([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?';
const SHORT_EXPONENT = " ([eE] [-+]? [0-9]{1,2})?";
const INTEGER_RULE = `integer-number-rule ::= ${NUMBER}`;

/** Synchronous (what `llama.createGrammarForJsonSchema` runs), so a prompt's tool grammar can be built as the prompt is. */
export function jsonSchemaGbnf(llama: Llama, schema: GbnfJsonSchema): string {
  // Its signature infers the output's TypeScript type from a literal schema; ours is data.
  const { grammar } = new LlamaJsonSchemaGrammar(llama, schema as never);
  const numbers = grammar.includes("number-rule ::=");
  if (!grammar.includes(NEWLINES_TAIL) || (numbers && !grammar.includes(EXPONENT))) throw new Error("node-llama-cpp's JSON-schema grammar changed shape: see jsonSchemaGbnf.ts");
  return grammar
    .replace(NEWLINES_TAIL, "")
    .replace(INTEGER_RULE + EXPONENT, INTEGER_RULE)
    .replaceAll(EXPONENT, SHORT_EXPONENT);
}
