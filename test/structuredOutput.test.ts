// Structured output through the official openai client against a running server: every
// answer to a json_schema request parses and validates (ajv), over many seeds at temperature
// 1, streamed and not, on a random-weight stand-in (whose text is otherwise gibberish) and on
// stories260K; json_object answers are JSON objects; unsupported keywords are refused by name.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Ajv, type ValidateFunction } from "ajv";
import OpenAI from "openai";
import { STORIES, standInPaths, startTestServer } from "./helpers.ts";

const SEEDS = 20;

const schemas = {
  // Nested objects, required fields.
  person: {
    type: "object",
    properties: {
      name: { type: "string", minLength: 1, maxLength: 12 },
      age: { type: "integer" },
      address: {
        type: "object",
        properties: { city: { type: "string", maxLength: 10 }, zip: { type: "string", minLength: 5, maxLength: 5 } },
        required: ["city", "zip"],
        additionalProperties: false,
      },
    },
    required: ["name", "age", "address"],
    additionalProperties: false,
  },
  // Arrays, enums (strings and null), booleans, numbers.
  ticket: {
    type: "object",
    properties: {
      tags: { type: "array", items: { type: "string", enum: ["red", "green", "blue"] }, minItems: 1, maxItems: 4 },
      status: { enum: ["open", "closed", null] },
      flags: { type: "array", items: { type: "boolean" }, maxItems: 3 },
      score: { type: "number" },
    },
    required: ["tags", "status", "flags", "score"],
    additionalProperties: false,
  },
  // anyOf, $defs and $ref, const, a time format.
  event: {
    type: "object",
    properties: {
      kind: { const: "event" },
      at: { type: "string", format: "time" },
      items: { type: "array", items: { $ref: "#/$defs/item" }, maxItems: 3 },
      note: { anyOf: [{ type: "string", maxLength: 8 }, { type: "null" }] },
    },
    required: ["kind", "at", "items", "note"],
    additionalProperties: false,
    $defs: { item: { type: "object", properties: { id: { type: "integer" }, label: { enum: ["a", "b"] } }, required: ["id", "label"], additionalProperties: false } },
  },
} satisfies Record<string, Record<string, unknown>>;

const ajv = new Ajv({ allErrors: true });
// RFC 3339 full-time, as the grammar writes it (ajv itself knows no formats).
ajv.addFormat("time", /^([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/);
const validators: Record<string, ValidateFunction> = Object.fromEntries(Object.entries(schemas).map(([name, s]) => [name, ajv.compile(s)]));

describe("structured output through the openai client", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  before(async () => {
    const paths = standInPaths();
    server = await startTestServer({
      models: [
        { id: "stand-in", path: paths["llama-5m-q8"] },
        { id: "stories", path: STORIES },
      ],
      devices: { count: 2, memory: "100MB" },
      // Twenty requests at once would be refused (429) when this machine is slow; admission is not what is tested.
      scheduler: { admissionTtftFactor: 0 },
    });
  });
  after(async () => server.shutdown());

  /** One answer's text and finish reason; odd seeds stream. */
  async function ask(
    model: string,
    seed: number,
    responseFormat: OpenAI.ResponseFormatJSONSchema | OpenAI.ResponseFormatJSONObject,
    maxTokens = 400,
  ): Promise<{ text: string; finish: string | null }> {
    const body = { model, messages: [{ role: "user" as const, content: "Describe it as JSON." }], max_tokens: maxTokens, temperature: 1, seed, response_format: responseFormat };
    if (seed % 2 === 0) {
      const r = await server.client.chat.completions.create(body);
      return { text: r.choices[0]!.message.content!, finish: r.choices[0]!.finish_reason };
    }
    let text = "";
    let finish: string | null = null;
    for await (const c of await server.client.chat.completions.create({ ...body, stream: true })) {
      text += c.choices[0]?.delta?.content ?? "";
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    return { text, finish };
  }

  for (const model of ["stand-in", "stories"]) {
    for (const [name, schema] of Object.entries(schemas)) {
      it(`${model}: json_schema "${name}": ${SEEDS} seeds, every answer parses and validates`, async () => {
        const format = { type: "json_schema" as const, json_schema: { name, schema, strict: true } };
        const answers = await Promise.all(Array.from({ length: SEEDS }, (_, seed) => ask(model, seed, format)));
        const distinct = new Set<string>();
        for (const [seed, a] of answers.entries()) {
          assert.equal(a.finish, "stop", `seed ${seed} ended by itself: ${a.text}`);
          const value = JSON.parse(a.text);
          assert.ok(validators[name]!(value), `seed ${seed}: ${a.text}\n${JSON.stringify(validators[name]!.errors)}`);
          distinct.add(JSON.stringify(value));
        }
        assert.ok(distinct.size > SEEDS / 2, "seeds give different answers");
      });
    }
  }

  it(`stories: json_object: ${SEEDS} seeds, every answer is a JSON object`, async () => {
    const answers = await Promise.all(Array.from({ length: SEEDS }, (_, seed) => ask("stories", seed, { type: "json_object" }, 900)));
    for (const [seed, a] of answers.entries()) {
      assert.equal(a.finish, "stop", `seed ${seed}: ${a.text}`);
      const value = JSON.parse(a.text);
      assert.ok(typeof value === "object" && value !== null && !Array.isArray(value), a.text);
    }
  });

  it("completions take response_format too; seeded answers repeat", async () => {
    const body = {
      model: "stand-in",
      prompt: "A ticket:",
      max_tokens: 300,
      temperature: 1,
      seed: 3,
      response_format: { type: "json_schema", json_schema: { name: "ticket", schema: schemas.ticket } },
    };
    const [r1, r2] = await Promise.all([server.client.completions.create(body as never), server.client.completions.create(body as never)]);
    const text = (r1 as OpenAI.Completion).choices[0]!.text;
    assert.ok(validators.ticket!(JSON.parse(text)), text);
    assert.equal((r2 as OpenAI.Completion).choices[0]!.text, text);
  });

  it("max_tokens can cut the JSON short: finish_reason length, as OpenAI does", async () => {
    const r = await server.client.chat.completions.create({
      model: "stand-in",
      messages: [{ role: "user", content: "A person" }],
      max_tokens: 4,
      seed: 1,
      response_format: { type: "json_schema", json_schema: { name: "person", schema: schemas.person } },
    });
    assert.equal(r.choices[0]!.finish_reason, "length");
    assert.throws(() => JSON.parse(r.choices[0]!.message.content!));
  });

  it("a schema keyword the grammar cannot enforce is a 400 naming it, on chat and completions", async () => {
    const schema = { type: "object", properties: { email: { type: "string", pattern: "^[^@]+@[^@]+$" } } };
    const attempts = [
      server.client.chat.completions.create({
        model: "stand-in",
        messages: [{ role: "user", content: "x" }],
        response_format: { type: "json_schema", json_schema: { name: "contact", schema } },
      }),
      server.client.completions.create({ model: "stand-in", prompt: "x", response_format: { type: "json_schema", json_schema: { name: "contact", schema } } } as never),
    ];
    for (const attempt of attempts) {
      const e = await attempt.then(
        () => assert.fail("accepted"),
        (e: unknown) => e,
      );
      assert.ok(e instanceof OpenAI.APIError);
      assert.equal(e.status, 400);
      assert.equal(e.code, "unsupported_schema_keyword");
      assert.equal(e.param, "response_format.json_schema.schema.properties.email.pattern");
      assert.match(e.message, /"pattern"/);
    }
  });
});
