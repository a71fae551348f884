/**
 * Request bodies of the OpenAI endpoints Pitcher serves, validated with zod. Options a
 * client may send but Pitcher does not implement are refused by name, not ignored.
 */
import { z } from "zod";
import { InvalidRequestError, UnsupportedOptionError } from "../core/errors.ts";
import { formatZodError } from "../core/formatZodError.ts";
import { toolBodyFields, toolMessageFields } from "./toolCalls.ts";

const stop = z.union([z.string(), z.array(z.string()).max(4)]).nullish();

const common = {
  model: z.string({ required_error: "model is required" }).min(1),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  stop,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  n: z.number().int().min(1).nullish(),
  user: z.string().nullish(),
  presence_penalty: z.number().nullish(),
  frequency_penalty: z.number().nullish(),
};

const textPart = z.object({ type: z.literal("text"), text: z.string() });

export const chatBodySchema = z
  .object({
    ...common,
    max_completion_tokens: z.number().int().min(1).nullish(),
    messages: z
      .array(
        z.object({
          role: z.enum(["system", "developer", "user", "assistant", "tool"]),
          // An assistant message that only calls tools may leave content out.
          content: z.union([z.string(), z.array(textPart)]).nullish(),
          name: z.string().optional(),
          ...toolMessageFields,
        }),
      )
      .min(1, "messages must hold at least one message"),
    logprobs: z.boolean().nullish(),
    ...toolBodyFields,
    response_format: z.object({ type: z.string() }).passthrough().nullish(),
  })
  .passthrough();

export const completionBodySchema = z
  .object({
    ...common,
    prompt: z.union([z.string(), z.array(z.string()).length(1), z.array(z.number().int().min(0)).min(1)]),
    echo: z.boolean().nullish(),
    logprobs: z.number().nullish(),
    best_of: z.number().int().nullish(),
    suffix: z.string().nullish(),
  })
  .passthrough();

export type ChatBody = z.infer<typeof chatBodySchema>;
export type CompletionBody = z.infer<typeof completionBodySchema>;

export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new InvalidRequestError("The request body must be a JSON object");
  const res = schema.safeParse(body);
  if (!res.success) {
    const first = res.error.issues[0]!;
    throw new InvalidRequestError(`Invalid request: ${formatZodError(res.error)}`, first.path.join(".") || null);
  }
  return res.data;
}

/** Options Pitcher refuses rather than silently ignoring. */
export function refuseUnsupported(body: Record<string, unknown>): void {
  const unsupported: [string, boolean][] = [
    ["n", typeof body.n === "number" && body.n > 1],
    ["best_of", typeof body.best_of === "number" && body.best_of > 1],
    ["logprobs", body.logprobs === true || (typeof body.logprobs === "number" && body.logprobs > 0)],
    ["top_logprobs", body.top_logprobs !== undefined && body.top_logprobs !== null],
    ["functions", Array.isArray(body.functions) && body.functions.length > 0],
    ["function_call", body.function_call !== undefined && body.function_call !== null],
    ["response_format", typeof body.response_format === "object" && body.response_format !== null && (body.response_format as { type?: string }).type !== "text"],
    ["echo", body.echo === true],
    ["suffix", typeof body.suffix === "string" && body.suffix.length > 0],
    ["logit_bias", typeof body.logit_bias === "object" && body.logit_bias !== null && Object.keys(body.logit_bias).length > 0],
  ];
  for (const [name, bad] of unsupported)
    if (bad)
      throw new UnsupportedOptionError(
        name === "n" || name === "best_of" ? `${name} > 1 is not supported: Pitcher returns one choice per request` : `${name} is not supported by Pitcher`,
        name,
      );
}
