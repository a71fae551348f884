/**
 * `response_format` as the output grammar the device enforces (core's `OutputGrammar`).
 *
 * The device compiles a JSON schema with node-llama-cpp's JSON-schema subset (its
 * `GbnfJsonSchema`), which silently skips whatever it does not know. So every keyword is
 * checked here: one the grammar would not enforce is refused with a 400 naming it
 * (`unsupported_schema_keyword`, `param` the keyword's path), never passed on to be ignored.
 * What the grammar lets through validates against the schema the client sent. The device
 * gets the schema rewritten to the subset: `anyOf` as node-llama-cpp's `oneOf` (which it
 * treats as "any of"), `definitions` as `$defs`, annotations and `required` dropped (every
 * listed property is always written).
 */
import type { OutputGrammar } from "../core/devicePort.ts";
import { InvalidRequestError, UnsupportedOptionError, UnsupportedSchemaKeywordError } from "../core/errors.ts";

type Schema = Record<string, unknown>;

/** `json_object`: any JSON object. */
const ANY_OBJECT: Schema = { type: "object", additionalProperties: true };
/** A schema without a type: any JSON value (an array without items holds any values). */
const ANY_VALUE: Schema = { oneOf: [ANY_OBJECT, { type: "array" }, { type: ["string", "number", "boolean", "null"] }] };

/** Keywords that describe and do not constrain: accepted anywhere, not sent on. */
const ANNOTATIONS = new Set(["title", "description", "$schema", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly"]);
const PRIMITIVES = new Set(["string", "number", "integer", "boolean", "null"]);
/** `date` and `date-time` are left out: node-llama-cpp's grammar for them allows February 31st. */
const FORMATS = new Set(["time"]);

/** Why a keyword node-llama-cpp knows of is still refused, or what to use instead. */
const REFUSED: Record<string, string> = {
  oneOf: "the grammar guarantees at least one branch, not exactly one; use anyOf",
  allOf: "the grammar cannot intersect schemas",
  not: "the grammar cannot exclude a schema",
  pattern: "the grammar cannot follow a regular expression",
  format: `the grammar knows only the formats ${[...FORMATS].join(", ")}`,
  nullable: 'use "type": ["…", "null"] or anyOf with {"type": "null"}',
};

type Kind = "ref" | "anyOf" | "const" | "enum" | "object" | "array" | "string" | "basic";
const ALLOWED: Record<Kind, ReadonlySet<string>> = {
  ref: new Set(["$ref"]),
  anyOf: new Set(["anyOf"]),
  const: new Set(["const", "type"]),
  enum: new Set(["enum", "type"]),
  object: new Set(["type", "properties", "additionalProperties", "required", "minProperties", "maxProperties"]),
  array: new Set(["type", "items", "prefixItems", "minItems", "maxItems"]),
  string: new Set(["type", "minLength", "maxLength", "format"]),
  basic: new Set(["type"]),
};

/** The grammar `response_format` asks for; undefined for plain text. */
export function outputGrammarFor(responseFormat: unknown): OutputGrammar | undefined {
  const at = "response_format";
  if (responseFormat === undefined || responseFormat === null) return undefined;
  if (!isObject(responseFormat)) throw new InvalidRequestError("response_format must be an object", at);
  onlyKeys(responseFormat, ["type", "json_schema"], at);
  const { type } = responseFormat;
  if (type === "text") return undefined;
  if (type === "json_object") return { kind: "json", schema: ANY_OBJECT };
  if (type !== "json_schema") throw new InvalidRequestError(`response_format.type must be "text", "json_object" or "json_schema", not ${JSON.stringify(type)}`, `${at}.type`);
  const spec = responseFormat.json_schema;
  if (!isObject(spec)) throw new InvalidRequestError('response_format.json_schema is required when type is "json_schema"', `${at}.json_schema`);
  onlyKeys(spec, ["name", "description", "schema", "strict"], `${at}.json_schema`);
  if (typeof spec.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(spec.name))
    throw new InvalidRequestError("response_format.json_schema.name must be 1 to 64 letters, digits, _ or -", `${at}.json_schema.name`);
  if (spec.description !== undefined && typeof spec.description !== "string")
    throw new InvalidRequestError("response_format.json_schema.description must be a string", `${at}.json_schema.description`);
  if (spec.strict !== undefined && spec.strict !== null && typeof spec.strict !== "boolean")
    throw new InvalidRequestError("response_format.json_schema.strict must be a boolean", `${at}.json_schema.strict`);
  // Without a schema, any JSON object (as json_object). `strict` changes nothing: a schema is always enforced.
  if (spec.schema === undefined || spec.schema === null) return { kind: "json", schema: ANY_OBJECT };
  return { kind: "json", schema: grammarSchema(spec.schema, `${at}.json_schema.schema`) };
}

/** The schema in node-llama-cpp's subset, or a 400 naming the first keyword it would not enforce. */
export function grammarSchema(schema: unknown, at: string): Schema {
  if (!isObject(schema)) throw invalid(at, "must be a JSON schema object");
  // Definitions live at the top only, where `#/$defs/<name>` points.
  const defs: [name: string, def: unknown, at: string][] = [];
  for (const key of ["$defs", "definitions"] as const) {
    const d = schema[key];
    if (d === undefined) continue;
    if (!isObject(d)) throw invalid(`${at}.${key}`, "must be an object of schemas");
    for (const [name, def] of Object.entries(d)) defs.push([name, def, `${at}.${key}.${name}`]);
  }
  const names = new Set(defs.map(([name]) => name));
  if (names.size !== defs.length) throw invalid(at, "$defs and definitions name the same schema twice");
  const { $defs: _defs, definitions: _definitions, ...body } = schema;
  const root = convert(body, at, names);
  if (defs.length === 0) return root;
  return { ...root, $defs: Object.fromEntries(defs.map(([name, def, defAt]) => [name, convert(def, defAt, names)])) };
}

function convert(node: unknown, at: string, defs: ReadonlySet<string>): Schema {
  if (!isObject(node)) throw invalid(at, "must be a JSON schema object");
  const kind = kindOf(node, at);
  for (const key of Object.keys(node)) {
    if (ANNOTATIONS.has(key) || ALLOWED[kind].has(key)) continue;
    if (key === "$defs" || key === "definitions") throw unsupported(key, at, "definitions are supported at the top of the schema only");
    throw unsupported(key, at, REFUSED[key] ?? (kind === "basic" ? "the grammar supports no such constraint here" : `the grammar does not support it beside ${kindKeyword(kind)}`));
  }
  switch (kind) {
    case "ref": {
      const ref = node.$ref;
      const m = typeof ref === "string" ? /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref) : null;
      if (!m || !defs.has(m[2]!))
        throw unsupported("$ref", at, `only "#/$defs/<name>" references to a definition at the top of the schema are supported, not ${JSON.stringify(ref)}`);
      return { $ref: `#/$defs/${m[2]}` };
    }
    case "anyOf": {
      const branches = node.anyOf;
      if (!Array.isArray(branches) || branches.length === 0) throw invalid(`${at}.anyOf`, "must be a non-empty array of schemas");
      return { oneOf: branches.map((b, i) => convert(b, `${at}.anyOf.${i}`, defs)) };
    }
    case "const":
      if (!isPrimitive(node.const)) throw unsupported("const", at, "the grammar supports string, number, boolean and null constants only");
      typeAgrees(node, [node.const], at);
      return { const: node.const };
    case "enum": {
      const values = node.enum;
      if (!Array.isArray(values) || values.length === 0) throw invalid(`${at}.enum`, "must be a non-empty array");
      if (!values.every(isPrimitive)) throw unsupported("enum", at, "the grammar supports string, number, boolean and null values only");
      typeAgrees(node, values, at);
      return { enum: values };
    }
    case "object":
      return objectSchema(node, at, defs);
    case "array":
      return arraySchema(node, at, defs);
    case "string": {
      if (node.format !== undefined) {
        if (typeof node.format !== "string" || !FORMATS.has(node.format)) throw unsupported("format", at, REFUSED.format!);
        for (const k of ["minLength", "maxLength"]) if (k in node) throw unsupported(k, at, "the grammar does not combine it with format");
        return { type: "string", format: node.format };
      }
      const minLength = count(node, "minLength", at);
      const maxLength = count(node, "maxLength", at);
      if (minLength !== undefined && maxLength !== undefined && maxLength < minLength) throw invalid(`${at}.maxLength`, "is below minLength");
      return { type: "string", ...(minLength !== undefined ? { minLength } : {}), ...(maxLength !== undefined ? { maxLength } : {}) };
    }
    case "basic":
      // No type: any JSON value (node-llama-cpp would write null).
      return node.type === undefined ? ANY_VALUE : { type: node.type };
  }
}

/** The keyword that decides a node's shape, in node-llama-cpp's order of precedence. */
function kindOf(node: Schema, at: string): Kind {
  for (const key of ["oneOf", "allOf", "not"]) if (key in node) throw unsupported(key, at, REFUSED[key]!);
  if ("$ref" in node) return "ref";
  if ("anyOf" in node) return "anyOf";
  if ("const" in node) return "const";
  if ("enum" in node) return "enum";
  const { type } = node;
  if (type === "object" || type === "array" || type === "string") return type;
  if (type === undefined) return "basic";
  const types = Array.isArray(type) ? type : [type];
  if (types.length === 0 || !types.every((t) => typeof t === "string" && PRIMITIVES.has(t)))
    throw unsupported("type", at, `expected one of object, array, ${[...PRIMITIVES].join(", ")}, or a list of ${[...PRIMITIVES].join(", ")}`);
  return "basic";
}

function objectSchema(node: Schema, at: string, defs: ReadonlySet<string>): Schema {
  const props = node.properties ?? {};
  if (!isObject(props)) throw invalid(`${at}.properties`, "must be an object of schemas");
  const names = Object.keys(props);
  const properties = Object.fromEntries(names.map((k) => [k, convert(props[k], `${at}.properties.${k}`, defs)]));
  const { required } = node;
  if (required !== undefined) {
    if (!Array.isArray(required) || !required.every((r) => typeof r === "string")) throw invalid(`${at}.required`, "must be an array of property names");
    const missing = required.find((r) => !(r in props));
    // The grammar writes the listed properties only.
    if (missing !== undefined) throw unsupported("required", at, `it names "${missing}", which is not in properties`);
  }
  let additional: Schema | boolean = false;
  if (node.additionalProperties !== undefined && node.additionalProperties !== false) {
    // An extra key could repeat a listed one, and JSON.parse keeps the last value.
    if (names.length > 0)
      throw unsupported("additionalProperties", at, 'the grammar allows extra properties only when no properties are listed; use "additionalProperties": false');
    additional = node.additionalProperties === true ? true : convert(node.additionalProperties, `${at}.additionalProperties`, defs);
  }
  const minProperties = count(node, "minProperties", at);
  const maxProperties = count(node, "maxProperties", at);
  // Every listed property is always written; the grammar can vary only the extra ones.
  if (additional === false && minProperties !== undefined && minProperties > names.length)
    throw unsupported("minProperties", at, `only the ${names.length} listed properties can be written`);
  if (maxProperties !== undefined && maxProperties < Math.max(names.length, minProperties ?? 0))
    throw unsupported("maxProperties", at, `every listed property is written (${names.length}) and minProperties must fit`);
  return {
    type: "object",
    properties,
    ...(additional !== false ? { additionalProperties: additional } : {}),
    ...(minProperties !== undefined ? { minProperties } : {}),
    ...(maxProperties !== undefined ? { maxProperties } : {}),
  };
}

function arraySchema(node: Schema, at: string, defs: ReadonlySet<string>): Schema {
  const items = node.items === undefined ? undefined : convert(node.items, `${at}.items`, defs);
  let prefixItems: Schema[] | undefined;
  if (node.prefixItems !== undefined) {
    if (!Array.isArray(node.prefixItems)) throw invalid(`${at}.prefixItems`, "must be an array of schemas");
    prefixItems = node.prefixItems.map((p, i) => convert(p, `${at}.prefixItems.${i}`, defs));
  }
  const minItems = count(node, "minItems", at);
  const maxItems = count(node, "maxItems", at);
  if (minItems !== undefined && maxItems !== undefined && maxItems < minItems) throw invalid(`${at}.maxItems`, "is below minItems");
  if (maxItems !== undefined && prefixItems && maxItems < prefixItems.length) throw unsupported("maxItems", at, "every prefixItems entry is written");
  return {
    type: "array",
    ...(items ? { items } : {}),
    ...(prefixItems ? { prefixItems } : {}),
    ...(minItems !== undefined ? { minItems } : {}),
    ...(maxItems !== undefined ? { maxItems } : {}),
  };
}

/** `const` and `enum` decide the output alone: a `type` beside them must admit every value. */
function typeAgrees(node: Schema, values: unknown[], at: string): void {
  if (node.type === undefined) return;
  const types = Array.isArray(node.type) ? node.type : [node.type];
  const fits = (v: unknown) =>
    types.some((t) =>
      t === "null" ? v === null : t === "integer" ? Number.isInteger(v) : t === "number" ? typeof v === "number" : t === "string" || t === "boolean" ? typeof v === t : false,
    );
  if (!values.every(fits)) throw unsupported("type", at, "a value of const or enum does not have this type");
}

function count(node: Schema, key: string, at: string): number | undefined {
  const v = node[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw invalid(`${at}.${key}`, "must be a non-negative integer");
  return v;
}

function kindKeyword(kind: Kind): string {
  return kind === "object" || kind === "array" || kind === "string" ? `"type": "${kind}"` : kind === "ref" ? "$ref" : kind;
}

function onlyKeys(o: Schema, keys: string[], at: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new UnsupportedOptionError(`${at}.${k} is not supported: ${at} takes ${keys.join(", ")}`, `${at}.${k}`);
}

function unsupported(keyword: string, at: string, why: string): UnsupportedSchemaKeywordError {
  return new UnsupportedSchemaKeywordError(`The JSON-schema keyword "${keyword}" at ${at} is not supported: ${why}`, `${at}.${keyword}`);
}

function invalid(at: string, what: string): InvalidRequestError {
  return new InvalidRequestError(`${at} ${what}`, at, "invalid_schema");
}

function isObject(v: unknown): v is Schema {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isPrimitive(v: unknown): boolean {
  return v === null || typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v));
}
