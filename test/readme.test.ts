// The README's configuration example and options table against the schema, so that the
// defaults a user reads are the defaults the server applies (they had drifted: the example
// showed `contextTokens: 4096` and `gpu: auto` as if they were defaults).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import YAML, { isMap, isPair, isScalar, isSeq } from "yaml";
import { z } from "zod";
import { parseConfig } from "../src/config/loadConfig.ts";
import { configSchema } from "../src/config/schema.ts";
import { DEFAULT_SLO } from "../src/core/types.ts";
import { ROOT } from "./helpers.ts";

const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");

/** Every field the schema accepts, as dotted paths (`models[].slo.ttftMs` inside arrays). */
function schemaFields(t: z.ZodTypeAny, prefix = ""): string[] {
  // Defaults, optionals and refinements (e.g. a check across two fields) wrap the object.
  while (t instanceof z.ZodDefault || t instanceof z.ZodOptional || t instanceof z.ZodEffects)
    t = t instanceof z.ZodDefault ? t._def.innerType : t instanceof z.ZodEffects ? t.innerType() : t.unwrap();
  if (t instanceof z.ZodObject) return Object.entries(t.shape as Record<string, z.ZodTypeAny>).flatMap(([k, v]) => schemaFields(v, prefix ? `${prefix}.${k}` : k));
  if (t instanceof z.ZodArray) return schemaFields(t.element, `${prefix}[]`);
  return [prefix];
}

/**
 * What the server uses when a field is left out: the schema's defaults, and the SLO targets
 * that resolveSlo layers under `defaults.slo` (the schema leaves them empty).
 */
function effectiveDefault(field: string): unknown {
  const parsed = parseConfig({}, "defaults") as Record<string, unknown>;
  const withSlo = { ...parsed, defaults: { ...(parsed.defaults as object), slo: { ...DEFAULT_SLO, ...(parsed.defaults as { slo: object }).slo } } };
  let v: unknown = withSlo;
  for (const k of field.split(".")) v = v === undefined || k.endsWith("[]") ? undefined : (v as Record<string, unknown>)[k];
  return v;
}

/** The options table: rows of `| \`field\` | default | meaning |` after its header. */
function optionsTable(): { field: string; defaultCell: string }[] {
  const lines = README.split("\n");
  const header = lines.findIndex((l) => /^\|\s*field\s*\|\s*default\s*\|\s*meaning\s*\|$/.test(l));
  assert.ok(header >= 0, "README has no `| field | default | meaning |` table");
  const rows: { field: string; defaultCell: string }[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith("|")) break;
    const [, field, defaultCell] = line.split("|").map((c) => c.trim());
    rows.push({ field: field!.replace(/^`|`$/g, ""), defaultCell: defaultCell! });
  }
  return rows;
}

/** A cell that is one code span is a value (YAML, as in a config file); anything else is prose. */
function literalOf(cell: string): { value: unknown } | undefined {
  const m = /^`([^`]+)`$/.exec(cell);
  return m ? { value: YAML.parse(m[1]!) } : undefined;
}

function exampleConfig(): string {
  const m = /```yaml\n(# pitcher\.yaml[^\n]*\n[\s\S]*?)```/.exec(README);
  assert.ok(m, "README has no ```yaml block starting with `# pitcher.yaml`");
  return m[1]!;
}

describe("README configuration", () => {
  it("the options table lists every field of the schema, and only those", () => {
    const documented = optionsTable().map((r) => r.field);
    assert.deepEqual([...documented].sort(), schemaFields(configSchema).sort());
  });

  it("every default in the options table is the one the server applies", () => {
    for (const { field, defaultCell } of optionsTable()) {
      const literal = literalOf(defaultCell);
      const actual = effectiveDefault(field);
      if (literal) assert.deepEqual(literal.value, actual, `${field}: README says ${defaultCell}, the schema applies ${JSON.stringify(actual)}`);
      // Prose ("one per core", "required") is for fields the schema leaves unset.
      else assert.equal(actual, undefined, `${field}: README describes the default in words (${defaultCell}) but the schema applies ${JSON.stringify(actual)}`);
    }
  });

  it("the example config is valid, and each default its comments name is the real one", () => {
    const text = exampleConfig();
    parseConfig(YAML.parse(text), "README example");
    const doc = YAML.parseDocument(text);
    const named: string[] = [];
    const visit = (node: unknown, prefix: string): void => {
      if (isSeq(node)) for (const item of node.items) visit(item, `${prefix}[]`);
      if (!isMap(node)) return;
      for (const pair of node.items) {
        if (!isPair(pair) || !isScalar(pair.key)) continue;
        const field = prefix ? `${prefix}.${String(pair.key.value)}` : String(pair.key.value);
        const comment = isScalar(pair.value) ? (pair.value.comment ?? "") : "";
        // "(default 80MB, sized for …)", "(default false: CPU)": the value is the word after "default".
        for (const m of comment.matchAll(/\bdefault (\S+?)[,;:)]?(?=\s|$)/g)) {
          named.push(field);
          assert.deepEqual(YAML.parse(m[1]!), effectiveDefault(field), `example, ${field}: the comment says default ${m[1]}`);
        }
        visit(pair.value, field);
      }
    };
    visit(doc.contents, "");
    // The example shows non-default values for these; its comments must say so.
    for (const field of ["devices.memory", "devices.gpu", "defaults.contextTokens"]) assert.ok(named.includes(field), `example: no "default …" comment on ${field}`);
  });
});
