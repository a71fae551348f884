/**
 * Hostile requests for the fuzz suite (test/fuzz.test.ts) and bench/fuzz.ts: bodies derived
 * from the API's own schemas, then mutated at the value level (types, sizes, unicode, lone
 * surrogates, huge numbers, prototype keys) and at the byte level (duplicated keys, deep
 * nesting, broken JSON, stray bytes, wrong content types); and the check that an answer is
 * what the API promises: a success, or a 4xx in the OpenAI error body.
 */
import fc, { type Arbitrary } from "fast-check";
import type { ZodTypeAny } from "zod";
import { chatBodySchema, completionBodySchema } from "../../src/api/requestSchemas.ts";
import { arbitraryOf, text } from "./zodArbitrary.ts";

export interface FuzzCase {
  route: string;
  /** null: no content-type header. */
  contentType: string | null;
  payload: Buffer;
  /** What was done to it, for a failure's message. */
  what: string;
}

/** The generation routes and their schemas; a route added to the API is added here. */
export const ROUTES: { route: string; schema: ZodTypeAny }[] = [
  { route: "/v1/chat/completions", schema: chatBodySchema },
  { route: "/v1/completions", schema: completionBodySchema },
];

/** A JSON fragment spliced in as raw text (what `JSON.stringify` cannot build: deep nesting, 1e400, duplicates). */
class Raw {
  constructor(readonly json: string) {}
}

const hugeNumber = fc.constantFrom(1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, -(2 ** 63), 2 ** 31, 2 ** 32 + 1, -1, 0, 0.5, -0, 5e-324, 1.0000000000000002);
const rawNumber = fc.constantFrom("1e400", "-1e400", "123456789012345678901234567890", "1E2", "-0", "0.0000000000000000000001", "1.5e-400").map((s) => new Raw(s));
const bigString = fc
  .tuple(fc.integer({ min: 1_000, max: 120_000 }), fc.constantFrom("a", "é", "😀", "\ud800", "\u0000", "\u202e", " ", "\\", '"', "<|im_start|>"))
  .map(([n, c]) => c.repeat(Math.ceil(n / c.length)));
const deep = fc
  .tuple(fc.integer({ min: 50, max: 100_000 }), fc.constantFrom(["[", "]"], ['{"a":', "}"], ['{"__proto__":', "}"], ['{"content":[', "]}"]))
  .map(([d, [open, close]]) => new Raw(open!.repeat(d) + (open === "[" ? "" : "1") + close!.repeat(d)));
const protoKeys = fc.constantFrom(
  new Raw('{"__proto__":{"model":"x","stream":true,"polluted":1}}'),
  new Raw('{"constructor":{"prototype":{"polluted":1}}}'),
  new Raw('{"__proto__":null}'),
  new Raw('{"toString":1,"hasOwnProperty":"x","valueOf":[]}'),
);
const manyItems = fc.tuple(fc.integer({ min: 100, max: 20_000 }), fc.jsonValue({ maxDepth: 1 })).map(([n, v]) => Array.from({ length: n }, () => v));

/** Values no field expects. */
const hostile: Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  hugeNumber,
  rawNumber,
  bigString,
  deep,
  protoKeys,
  manyItems,
  text(20),
  fc.constantFrom(null, true, false, "", [], {}, "m", 0, 1, -1),
);

type Body = Record<string, unknown>;

function sizeDown(body: Body, model: string): Body {
  // Generations stay short: the point is the answers, not the tokens.
  const out: Body = { ...body, model };
  if (typeof out.max_tokens === "number") out.max_tokens = 1 + (out.max_tokens % 3);
  if (typeof out.max_completion_tokens === "number") out.max_completion_tokens = 1 + (out.max_completion_tokens % 3);
  if (out.max_tokens === undefined && out.max_completion_tokens === undefined) out.max_tokens = 2;
  if (typeof out.n === "number") out.n = 1 + (out.n % 2);
  return out;
}

/** A body the schema takes, for model `model` (mostly) or an unknown one, asking few tokens. */
export function validBody(schema: ZodTypeAny, model: string): Arbitrary<Body> {
  return fc
    .tuple(arbitraryOf(schema) as Arbitrary<Body>, fc.oneof({ weight: 6, arbitrary: fc.constant(model) }, { weight: 1, arbitrary: text(30) }))
    .map(([b, m]) => sizeDown(b, m));
}

type Mutation = (b: Body) => Arbitrary<[Body | unknown, string]>;

const mutations: Mutation[] = [
  // A field (known or not) set to something it does not expect.
  (b) =>
    fc
      .tuple(fc.oneof(fc.constantFrom(...Object.keys(b)), fc.constantFrom("model", "messages", "prompt", "stop", "stream_options", "n", "seed", "tools", "x-extra")), hostile)
      .map(([k, v]) => [{ ...b, [k]: v }, `field ${k}`]),
  // A field dropped.
  (b) => fc.constantFrom(...Object.keys(b)).map((k) => [Object.fromEntries(Object.entries(b).filter(([key]) => key !== k)), `without ${k}`]),
  // Inside a message (chat) or the prompt array.
  (b) =>
    fc.tuple(fc.constantFrom("role", "content", "name", "tool_calls", "__proto__"), hostile).map(([k, v]) => {
      const messages = Array.isArray(b.messages) && b.messages.length > 0 ? [...b.messages] : [{ role: "user", content: "hi" }];
      messages[0] = { ...(messages[0] as object), [k]: v };
      return [{ ...b, messages }, `messages[0].${k}`];
    }),
  // Not an object at all.
  (_b) => hostile.map((v) => [v, "body replaced"]),
];

/** JSON text with `Raw` fragments spliced in. */
function serialize(value: unknown): string {
  const raws: string[] = [];
  const textWithHoles = JSON.stringify(value, (_k, v) => {
    if (v instanceof Raw) {
      raws.push(v.json);
      return `\u0000RAW${raws.length - 1}\u0000`;
    }
    return v;
  });
  return (textWithHoles ?? "null").replace(/"\\u0000RAW(\d+)\\u0000"/g, (_m, i) => raws[Number(i)]!);
}

/** Byte-level changes to a body's JSON text. */
const byteMutations: ((json: string) => Arbitrary<[Buffer, string]>)[] = [
  // Duplicated keys: the last wins in JSON.parse; whichever wins must be validated.
  (json) =>
    fc.tuple(fc.constantFrom("model", "messages", "prompt", "max_tokens", "stream", "__proto__"), hostile, fc.boolean()).map(([k, v, atEnd]) => {
      const dup = `${JSON.stringify(k)}:${serialize(v)}`;
      const out = json.startsWith("{") && json.length > 2 ? (atEnd ? `${json.slice(0, -1)},${dup}}` : `{${dup},${json.slice(1)}`) : json;
      return [Buffer.from(out), `duplicate key ${k}`];
    }),
  // Cut short, trailing garbage, a BOM, bytes that are not UTF-8, nothing.
  (json) => fc.integer({ min: 0, max: Math.max(0, json.length - 1) }).map((i) => [Buffer.from(json.slice(0, i)), "truncated"]),
  (json) => fc.constantFrom("x", "}", ",", " {}", "\u0000", "\n\n[]").map((g) => [Buffer.from(json + g), "trailing garbage"]),
  (json) => fc.constant([Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]), "BOM"]),
  (json) =>
    fc.constantFrom(Buffer.from([0xff, 0xfe]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0x80])).map((bad) => {
      const at = json.indexOf('"', json.indexOf(":") + 1) + 1 || 1;
      return [Buffer.concat([Buffer.from(json.slice(0, at)), bad, Buffer.from(json.slice(at))]), "invalid UTF-8"];
    }),
  (_json) => fc.constant([Buffer.alloc(0), "empty body"]),
];

const contentTypes = fc.oneof(
  { weight: 12, arbitrary: fc.constant("application/json") },
  { weight: 1, arbitrary: fc.constantFrom("application/json; charset=utf-8", "APPLICATION/JSON", "application/json; charset=latin1", "application/json;charset=utf-16") },
  {
    weight: 2,
    arbitrary: fc.constantFrom<string | null>(
      null,
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/xml",
      "",
      "application/json-patch+json",
      "*/*",
    ),
  },
);

/** One hostile request (or, a quarter of the time, a valid one). */
export function fuzzCase(model: string): Arbitrary<FuzzCase> {
  return fc.constantFrom(...ROUTES).chain(({ route, schema }) =>
    validBody(schema, model).chain((body) =>
      fc
        .oneof(
          { weight: 2, arbitrary: fc.constant<[Buffer, string]>([Buffer.from(serialize(body)), "valid"]) },
          {
            weight: 4,
            arbitrary: fc
              .integer({ min: 0, max: mutations.length - 1 })
              .chain((i) => mutations[i]!(body))
              .map(([b, what]): [Buffer, string] => [Buffer.from(serialize(b)), what]),
          },
          {
            weight: 2,
            arbitrary: fc.integer({ min: 0, max: byteMutations.length - 1 }).chain((i) => byteMutations[i]!(serialize(body))),
          },
        )
        .chain(([payload, what]) => contentTypes.map((contentType) => ({ route, contentType, payload, what }))),
    ),
  );
}

/**
 * What is wrong with an answer, or null: a success in the route's shape (JSON, or a stream
 * ending in `[DONE]`), or a 4xx whose body is exactly the OpenAI error body.
 */
export function answerProblem(status: number, contentType: string | undefined, body: string): string | null {
  if (status >= 400 && status < 500) {
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return `${status} with a body that is not JSON: ${body.slice(0, 200)}`;
    }
    const e = (json as { error?: Record<string, unknown> }).error;
    if (!e || Object.keys(json as object).length !== 1) return `${status} without the OpenAI error body: ${body.slice(0, 200)}`;
    const ok = typeof e.message === "string" && typeof e.type === "string" && typeof e.code === "string" && (e.param === null || typeof e.param === "string");
    return ok && Object.keys(e).sort().join() === "code,message,param,type" ? null : `${status} with a malformed error body: ${body.slice(0, 200)}`;
  }
  if (status !== 200) return `status ${status}: ${body.slice(0, 300)}`;
  if (contentType?.startsWith("text/event-stream")) {
    const events = body.split("\n\n").filter((e) => e.length > 0);
    if (events.at(-1) !== "data: [DONE]") return `a stream that does not end with [DONE]: ${body.slice(-300)}`;
    for (const e of events.slice(0, -1)) {
      if (!e.startsWith("data: ")) return `a stream event that is not data: ${e.slice(0, 200)}`;
      const chunk = JSON.parse(e.slice(6));
      if (chunk.error) return `an error event in a stream: ${e.slice(0, 300)}`;
    }
    return null;
  }
  try {
    const json = JSON.parse(body);
    if (!["chat.completion", "text_completion"].includes(json.object) || !Array.isArray(json.choices) || json.choices.length === 0)
      return `a 200 body of an unexpected shape: ${body.slice(0, 200)}`;
  } catch {
    return `a 200 body that is not JSON: ${body.slice(0, 200)}`;
  }
  return null;
}

/** A short description of a case for a failure message. */
export function describeCase(c: FuzzCase): string {
  const head = c.payload.subarray(0, 160).toString("utf8");
  return `${c.route} (${c.what}; content-type ${c.contentType}; ${c.payload.length} bytes): ${head}${c.payload.length > 160 ? "…" : ""}`;
}
