import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PitcherError } from "../core/errors.ts";
import { outputGrammarFor } from "./responseFormat.ts";

const jsonSchema = (schema: unknown) => ({ type: "json_schema", json_schema: { name: "out", schema, strict: true } });
const SCHEMA_AT = "response_format.json_schema.schema";

/** The error `outputGrammarFor` throws for this response_format. */
function refusal(rf: unknown): PitcherError {
  try {
    outputGrammarFor(rf);
  } catch (e) {
    assert.ok(e instanceof PitcherError, String(e));
    assert.equal(e.status, 400);
    return e;
  }
  assert.fail(`accepted ${JSON.stringify(rf)}`);
}

describe("response_format as an output grammar", () => {
  it("text is no grammar; json_object is any JSON object", () => {
    assert.equal(outputGrammarFor(undefined), undefined);
    assert.equal(outputGrammarFor({ type: "text" }), undefined);
    assert.deepEqual(outputGrammarFor({ type: "json_object" }), { kind: "json", schema: { type: "object", additionalProperties: true } });
  });

  it("a json_schema goes to the device in node-llama-cpp's subset: anyOf as oneOf, definitions as $defs, annotations dropped", () => {
    const g = outputGrammarFor(
      jsonSchema({
        title: "Person",
        type: "object",
        properties: {
          name: { type: "string", description: "full name", maxLength: 20 },
          pet: { anyOf: [{ $ref: "#/definitions/Pet" }, { type: "null" }] },
          tags: { type: "array", items: { type: "string", enum: ["a", "b"] }, minItems: 1, maxItems: 3 },
        },
        required: ["name", "pet"],
        additionalProperties: false,
        definitions: { Pet: { type: "object", properties: { kind: { const: "cat" } } } },
      }),
    );
    assert.deepEqual(g, {
      kind: "json",
      schema: {
        type: "object",
        properties: {
          name: { type: "string", maxLength: 20 },
          pet: { oneOf: [{ $ref: "#/$defs/Pet" }, { type: "null" }] },
          tags: { type: "array", items: { enum: ["a", "b"] }, minItems: 1, maxItems: 3 },
        },
        $defs: { Pet: { type: "object", properties: { kind: { const: "cat" } } } },
      },
    });
  });

  it("a keyword the grammar would not enforce is a 400 naming it, with its path", () => {
    const cases: [unknown, string][] = [
      [{ type: "string", pattern: "^a+$" }, `${SCHEMA_AT}.pattern`],
      [{ type: "object", properties: { email: { type: "string", format: "email" } } }, `${SCHEMA_AT}.properties.email.format`],
      [{ type: "object", properties: { d: { type: "string", format: "date" } } }, `${SCHEMA_AT}.properties.d.format`],
      [{ oneOf: [{ type: "string" }, { type: "integer" }] }, `${SCHEMA_AT}.oneOf`],
      [{ allOf: [{ type: "object" }] }, `${SCHEMA_AT}.allOf`],
      [{ type: "integer", minimum: 0 }, `${SCHEMA_AT}.minimum`],
      [{ type: "number", multipleOf: 2 }, `${SCHEMA_AT}.multipleOf`],
      [{ type: "array", items: { type: "integer" }, uniqueItems: true }, `${SCHEMA_AT}.uniqueItems`],
      [{ type: "object", patternProperties: { "^x": {} } }, `${SCHEMA_AT}.patternProperties`],
      [{ type: "object", properties: { a: { $ref: "#/$defs/missing" } } }, `${SCHEMA_AT}.properties.a.$ref`],
      [{ type: "object", properties: { a: { $ref: "https://example.com/s.json" } } }, `${SCHEMA_AT}.properties.a.$ref`],
      [{ type: "object", properties: { a: { type: "object", $defs: { x: {} } } } }, `${SCHEMA_AT}.properties.a.$defs`],
      [{ type: "object", properties: { a: { type: "string" } }, required: ["a", "b"] }, `${SCHEMA_AT}.required`],
      [{ type: "object", properties: { a: { type: "string" } }, additionalProperties: true }, `${SCHEMA_AT}.additionalProperties`],
      [{ type: "object", properties: { a: {} }, maxProperties: 0 }, `${SCHEMA_AT}.maxProperties`],
      [{ type: "string", enum: ["a", 1] }, `${SCHEMA_AT}.type`],
      [{ type: ["string", "object"] }, `${SCHEMA_AT}.type`],
      [{ type: "string", nullable: true }, `${SCHEMA_AT}.nullable`],
      [{ if: { type: "string" }, else: {} }, `${SCHEMA_AT}.if`],
    ];
    for (const [schema, param] of cases) {
      const e = refusal(jsonSchema(schema));
      assert.equal(e.code, "unsupported_schema_keyword", JSON.stringify(schema));
      assert.equal(e.param, param);
      const keyword = param.slice(param.lastIndexOf(".") + 1);
      assert.ok(e.message.includes(`"${keyword}"`), e.message);
    }
  });

  it("a malformed response_format or schema is a 400 at its field", () => {
    const cases: [unknown, string, string][] = [
      [{ type: "xml" }, "invalid_request", "response_format.type"],
      [{ type: "json_schema" }, "invalid_request", "response_format.json_schema"],
      [{ type: "json_schema", json_schema: { schema: {} } }, "invalid_request", "response_format.json_schema.name"],
      [{ type: "json_schema", json_schema: { name: "x", strict: "yes" } }, "invalid_request", "response_format.json_schema.strict"],
      [{ type: "json_object", schema: {} }, "unsupported_option", "response_format.schema"],
      [jsonSchema({ type: "string", maxLength: -1 }), "invalid_schema", `${SCHEMA_AT}.maxLength`],
      [jsonSchema({ type: "object", properties: { a: true } }), "invalid_schema", `${SCHEMA_AT}.properties.a`],
    ];
    for (const [rf, code, param] of cases) {
      const e = refusal(rf);
      assert.equal(e.code, code, JSON.stringify(rf));
      assert.equal(e.param, param);
    }
  });
});
