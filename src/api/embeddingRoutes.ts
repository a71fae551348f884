/**
 * POST /v1/embeddings in OpenAI's shape: `input` a string, an array of strings, an array of
 * token ids or an array of those; `encoding_format` `float` or `base64` (the vector's
 * little-endian float32 bytes, which the `openai` client asks for by default and decodes);
 * `user` accepted. `dimensions` is refused by name (no served model can shorten its
 * vectors), as is every field OpenAI's endpoint does not have.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { PitcherError, UnsupportedOptionError } from "../core/errors.ts";
import type { EmbeddingResult, Serving } from "../runtime/Serving.ts";
import { noteAdmitted } from "./httpEdges.ts";
import type { InFlightRequests } from "./InFlightRequests.ts";
import { parseBody } from "./requestSchemas.ts";

/** OpenAI's limit on inputs per request. */
const MAX_INPUTS = 2048;

const tokenIds = z.array(z.number().int().min(0), { invalid_type_error: "input must be a string, an array of strings, an array of token ids or an array of those" });

export const embeddingBodySchema = z
  .object({
    model: z.string({ required_error: "model is required" }).min(1),
    input: z.union([z.string(), z.array(z.string()).max(MAX_INPUTS), tokenIds, z.array(tokenIds).max(MAX_INPUTS)], {
      errorMap: () => ({ message: `input must be a string, an array of strings, an array of token ids or an array of those (at most ${MAX_INPUTS} inputs)` }),
    }),
    encoding_format: z.enum(["float", "base64"]).nullish(),
    dimensions: z.number().int().min(1).nullish(),
    user: z.string().nullish(),
  })
  .passthrough();

export type EmbeddingBody = z.infer<typeof embeddingBodySchema>;

const KNOWN_FIELDS = new Set(Object.keys(embeddingBodySchema.shape));

export function registerEmbeddingRoutes(app: FastifyInstance, serving: Serving, inFlight: InFlightRequests): void {
  app.post("/v1/embeddings", async (req, reply) => {
    const body = parseBody(embeddingBodySchema, req.body) as EmbeddingBody;
    for (const key of Object.keys(body)) if (!KNOWN_FIELDS.has(key)) throw new UnsupportedOptionError(`${key} is not a field of /v1/embeddings`, key);
    if (body.dimensions !== undefined && body.dimensions !== null)
      throw new UnsupportedOptionError(`dimensions is not supported: ${body.model} returns vectors of its own size and cannot shorten them`, "dimensions");
    const abort = new AbortController();
    // The response closing before we finished means the client went away: cancel at once.
    reply.raw.on("close", () => {
      if (!reply.raw.writableFinished) abort.abort();
    });
    inFlight.track(abort, reply.raw);
    const pending = serving.embed({ modelId: body.model, inputs: inputsOf(body.input), signal: abort.signal });
    noteAdmitted(req);
    let result: EmbeddingResult;
    try {
      result = await pending;
    } catch (e) {
      // A shutdown past its deadline aborts with its own error: the client gets that, not "cancelled".
      throw abort.signal.reason instanceof PitcherError ? abort.signal.reason : e;
    }
    const base64 = body.encoding_format === "base64";
    return {
      object: "list",
      data: result.vectors.map((v, index) => ({ object: "embedding", index, embedding: base64 ? float32Base64(v) : v })),
      model: body.model,
      usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
    };
  });
}

/** A string or token array is one input; an array of them is several. */
function inputsOf(input: EmbeddingBody["input"]): (string | number[])[] {
  if (typeof input === "string") return [input];
  if (input.length > 0 && typeof input[0] === "number") return [input as number[]];
  return input as (string | number[])[];
}

/** The vector as OpenAI's base64 encoding: little-endian float32 bytes. */
export function float32Base64(vector: number[]): string {
  const buf = Buffer.alloc(vector.length * 4);
  for (let i = 0; i < vector.length; i++) buf.writeFloatLE(vector[i]!, i * 4);
  return buf.toString("base64");
}
