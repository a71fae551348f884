/**
 * Request bodies of the OpenAI endpoints Pitcher serves, validated with zod. Options a
 * client may send but Pitcher does not implement are refused by name, not ignored.
 */
import { z } from "zod";
import { InvalidRequestError, UnsupportedOptionError } from "../core/errors.ts";
import { formatZodError } from "../core/formatZodError.ts";
import { toolBodyFields, toolMessageFields } from "./toolCalls.ts";

/** Most choices one request may ask for (`n`): each is a request of its own in the pool. */
export const MAX_CHOICES = 16;
/** Most alternatives per token `top_logprobs` (chat) or `logprobs` (completions) may ask for. */
export const MAX_TOP_LOGPROBS = 20;

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
  n: z.number().int().min(1).max(MAX_CHOICES).nullish(),
  user: z.string().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  // llama.cpp's extensions: 1 is off for repeat_penalty, 0 for top_k and min_p.
  repeat_penalty: z.number().gt(0).max(10).nullish(),
  top_k: z.number().int().min(0).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  logit_bias: z.record(z.string().regex(/^\d+$/, "logit_bias keys are token ids"), z.number().min(-100).max(100)).nullish(),
  // Checked, keyword by keyword, by responseFormat.ts.
  response_format: z.object({ type: z.string() }).passthrough().nullish(),
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
    top_logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
    ...toolBodyFields,
  })
  .passthrough();

export const completionBodySchema = z
  .object({
    ...common,
    prompt: z.union([z.string(), z.array(z.string()).length(1), z.array(z.number().int().min(0)).min(1)]),
    echo: z.boolean().nullish(),
    logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
    best_of: z.number().int().nullish(),
    suffix: z.string().nullish(),
  })
  .passthrough();

export type ChatBody = z.infer<typeof chatBodySchema>;
export type CompletionBody = z.infer<typeof completionBodySchema>;

/** Chat's `top_logprobs` means nothing without `logprobs: true` (OpenAI refuses it too). */
export function checkChatLogprobs(body: { logprobs?: boolean | null | undefined; top_logprobs?: number | null | undefined }): void {
  if (body.top_logprobs !== undefined && body.top_logprobs !== null && body.logprobs !== true) throw new InvalidRequestError("top_logprobs needs logprobs: true", "top_logprobs");
}

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
    ["best_of", typeof body.best_of === "number" && body.best_of > 1],
    ["functions", Array.isArray(body.functions) && body.functions.length > 0],
    ["function_call", body.function_call !== undefined && body.function_call !== null],
    ["echo", body.echo === true],
    ["suffix", typeof body.suffix === "string" && body.suffix.length > 0],
  ];
  for (const [name, bad] of unsupported)
    if (bad) throw new UnsupportedOptionError(name === "best_of" ? "best_of > 1 is not supported: ask for n choices instead" : `${name} is not supported by Pitcher`, name);
}
