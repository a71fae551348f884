/**
 * fast-check arbitraries derived from the API's own zod schemas, so that a field another
 * change adds to `requestSchemas.ts` is generated (and then mutated) without editing the
 * fuzz suite. Values follow the schema's shape and simple bounds (int, min, max, lengths,
 * enums, literals); refinements it cannot see may still make a value invalid, which is fine:
 * the suite only asks for a well-formed answer.
 */
import fc, { type Arbitrary } from "fast-check";
import type { ZodTypeAny } from "zod";

/** Text a client may send: mostly plain, sometimes any code point, sometimes a lone surrogate. */
export const text = (maxLength = 40): Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength }) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 3 }) },
  );

interface Check {
  kind: string;
  value?: number;
  inclusive?: boolean;
}

function numberArb(def: { checks: Check[] }): Arbitrary<number> {
  const isInt = def.checks.some((c) => c.kind === "int");
  let min = isInt ? -1e6 : -1e6;
  let max = 1e6;
  for (const c of def.checks) {
    if (c.kind === "min" && c.value !== undefined) min = c.inclusive === false ? c.value + (isInt ? 1 : 1e-9) : c.value;
    if (c.kind === "max" && c.value !== undefined) max = c.inclusive === false ? c.value - (isInt ? 1 : 1e-9) : c.value;
  }
  // Small values are the interesting ones for counts (max_tokens, n): keep them near the bottom.
  const top = Math.min(max, min + 64);
  return isInt ? fc.integer({ min: Math.ceil(min), max: Math.floor(top) }) : fc.double({ min, max: Math.max(min, max), noNaN: true, noDefaultInfinity: true });
}

/** An arbitrary of values that `schema` takes (up to refinements), `depth` bounding recursion. */
export function arbitraryOf(schema: ZodTypeAny, depth = 4): Arbitrary<unknown> {
  const def = schema._def as any;
  switch (def.typeName as string) {
    case "ZodString": {
      const min = def.checks.find((c: Check) => c.kind === "min")?.value ?? 0;
      return text(Math.max(min, 40)).filter((s) => s.length >= min);
    }
    case "ZodNumber":
      return numberArb(def);
    case "ZodBoolean":
      return fc.boolean();
    case "ZodLiteral":
      return fc.constant(def.value);
    case "ZodEnum":
      return fc.constantFrom(...(def.values as unknown[]));
    case "ZodNativeEnum":
      return fc.constantFrom(...Object.values(def.values as object));
    case "ZodNull":
      return fc.constant(null);
    case "ZodUndefined":
      return fc.constant(undefined);
    case "ZodNullable":
      return fc.option(arbitraryOf(def.innerType, depth), { nil: null, freq: 5 });
    case "ZodOptional":
      return fc.option(arbitraryOf(def.innerType, depth), { nil: undefined, freq: 3 });
    case "ZodDefault":
    case "ZodReadonly":
    case "ZodBranded":
    case "ZodCatch":
      return arbitraryOf(def.innerType ?? def.type, depth);
    case "ZodEffects":
      return arbitraryOf(def.schema, depth);
    case "ZodPipeline":
      return arbitraryOf(def.in, depth);
    case "ZodLazy":
      return depth <= 0 ? fc.constant(null) : arbitraryOf(def.getter(), depth - 1);
    case "ZodUnion":
    case "ZodDiscriminatedUnion":
      return fc.oneof(...[...(def.options as ZodTypeAny[])].map((o) => arbitraryOf(o, depth)));
    case "ZodArray": {
      const minLength = def.exactLength?.value ?? def.minLength?.value ?? 0;
      const maxLength = def.exactLength?.value ?? Math.min(def.maxLength?.value ?? minLength + 3, minLength + 3);
      return depth <= 0 && minLength === 0 ? fc.constant([]) : fc.array(arbitraryOf(def.type, depth - 1), { minLength, maxLength });
    }
    case "ZodTuple":
      return fc.tuple(...(def.items as ZodTypeAny[]).map((i) => arbitraryOf(i, depth - 1)));
    case "ZodRecord":
      return fc.dictionary(text(12), arbitraryOf(def.valueType, depth - 1), { maxKeys: 3 });
    case "ZodObject": {
      const shape = def.shape() as Record<string, ZodTypeAny>;
      if (depth <= 0) return fc.constant({});
      const fields = Object.fromEntries(Object.entries(shape).map(([k, v]) => [k, arbitraryOf(v, depth - 1)]));
      const required = Object.entries(shape)
        .filter(([, v]) => !v.isOptional())
        .map(([k]) => k);
      return fc.record(fields, { requiredKeys: required });
    }
    case "ZodIntersection":
      return fc.tuple(arbitraryOf(def.left, depth), arbitraryOf(def.right, depth)).map(([a, b]) => ({ ...(a as object), ...(b as object) }));
    default:
      // ZodUnknown, ZodAny and whatever a later schema uses that this does not know.
      return fc.jsonValue({ maxDepth: 2 });
  }
}
