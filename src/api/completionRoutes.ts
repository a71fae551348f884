/**
 * POST /v1/chat/completions and /v1/completions: the OpenAI body in, a `ServingRequest` to
 * the runtime, and its pieces and result out in the OpenAI wire format, whole or as
 * server-sent events (one chunk per token).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PitcherError, UnsupportedOptionError } from "../core/errors.ts";
import type { Sampling } from "../core/devicePort.ts";
import { generateChoices } from "../runtime/choices.ts";
import type { Generation, GenerationResult, Serving, ServingInput, ServingRequest } from "../runtime/Serving.ts";
import { errorBody } from "./errorBody.ts";
import { noteAdmitted, noteErrorCode } from "./httpEdges.ts";
import { type Tenancy, tenantAdmission } from "./auth.ts";
import type { InFlightRequests } from "./InFlightRequests.ts";
import { chatLogprobs, completionLogprobs } from "./logprobs.ts";
import { outputGrammarFor } from "./responseFormat.ts";
import { chatBodySchema, checkChatLogprobs, completionBodySchema, parseBody, refuseUnsupported, type ChatBody, type CompletionBody } from "./requestSchemas.ts";
import { chatMessages, ToolCallStream, toolAnswer, toolNames, toolsRequest } from "./toolCalls.ts";

/** OpenAI's default for /v1/completions (cut to what the context holds); chat completions default to all of it. */
const COMPLETION_DEFAULT_MAX_TOKENS = 16;

/** What the client asked of the output's length, and the field it used. */
interface MaxTokens {
  maxTokens?: number;
  maxTokensParam?: string;
  defaultMaxTokens?: number;
}

export function registerCompletionRoutes(app: FastifyInstance, serving: Serving, inFlight: InFlightRequests, tenancy?: Tenancy): void {
  app.post("/v1/completions", async (req, reply) => {
    const body = parseBody(completionBodySchema, req.body) as CompletionBody;
    refuseUnsupported(body as Record<string, unknown>);
    const prompt = Array.isArray(body.prompt) && typeof body.prompt[0] === "string" ? (body.prompt[0] as string) : (body.prompt as string | number[]);
    const limit = typeof body.max_tokens === "number" ? { maxTokens: body.max_tokens } : { defaultMaxTokens: COMPLETION_DEFAULT_MAX_TOKENS };
    return answer(serving, inFlight, req, reply, body, { kind: "completion", prompt }, limit, "text_completion", tenancy);
  });

  app.post("/v1/chat/completions", async (req, reply) => {
    const body = parseBody(chatBodySchema, req.body) as ChatBody;
    refuseUnsupported(body as Record<string, unknown>);
    checkChatLogprobs(body);
    const tools = toolsRequest(body);
    const messages = chatMessages(body.messages);
    const limit =
      typeof body.max_completion_tokens === "number"
        ? { maxTokens: body.max_completion_tokens, maxTokensParam: "max_completion_tokens" }
        : typeof body.max_tokens === "number"
          ? { maxTokens: body.max_tokens }
          : {};
    return answer(serving, inFlight, req, reply, body, { kind: "chat", messages, ...(tools ? { tools } : {}) }, limit, "chat.completion", tenancy);
  });
}

function given<T>(v: T | null | undefined): v is T {
  return v !== undefined && v !== null;
}

/** The body's sampling options; absent ones stay absent (the device's defaults apply). */
function sampling(body: ChatBody | CompletionBody): Sampling {
  const logprobs = "messages" in body ? (body.logprobs === true ? (body.top_logprobs ?? 0) : undefined) : (body.logprobs ?? undefined);
  return {
    temperature: body.temperature ?? 1,
    ...(given(body.top_p) ? { topP: body.top_p } : {}),
    ...(given(body.top_k) ? { topK: body.top_k } : {}),
    ...(given(body.min_p) ? { minP: body.min_p } : {}),
    ...(given(body.seed) ? { seed: body.seed } : {}),
    ...(given(body.presence_penalty) ? { presencePenalty: body.presence_penalty } : {}),
    ...(given(body.frequency_penalty) ? { frequencyPenalty: body.frequency_penalty } : {}),
    ...(given(body.repeat_penalty) ? { repeatPenalty: body.repeat_penalty } : {}),
    ...(given(body.logit_bias) && Object.keys(body.logit_bias).length > 0 ? { logitBias: Object.entries(body.logit_bias).map(([t, b]): [number, number] => [Number(t), b]) } : {}),
    ...(logprobs !== undefined ? { logprobs } : {}),
  };
}

function servingRequest(body: ChatBody | CompletionBody, input: ServingInput, limit: MaxTokens, signal: AbortSignal): ServingRequest {
  const grammar = outputGrammarFor(body.response_format);
  const plain = sampling(body);
  // A constrained step samples through node-llama-cpp's `evaluate`, which reports no logits.
  if (grammar && plain.logprobs !== undefined) throw new UnsupportedOptionError("logprobs together with response_format is not supported by Pitcher", "logprobs");
  return {
    modelId: body.model,
    input,
    ...limit,
    sampling: { ...plain, ...(grammar ? { grammar } : {}) },
    stop: body.stop === undefined || body.stop === null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop,
    signal,
  };
}

async function answer(
  serving: Serving,
  inFlight: InFlightRequests,
  req: FastifyRequest,
  reply: FastifyReply,
  body: ChatBody | CompletionBody,
  input: ServingInput,
  limit: MaxTokens,
  object: "chat.completion" | "text_completion",
  tenancy?: Tenancy,
): Promise<unknown> {
  const abort = new AbortController();
  // The response closing before we finished means the client went away: cancel at once.
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) abort.abort();
  });
  inFlight.track(abort, reply.raw);
  // A shutdown past its deadline aborts with its own error: the client gets that, not "cancelled".
  const why = (e: unknown): unknown => (abort.signal.reason instanceof PitcherError ? abort.signal.reason : e);
  const keyed = tenantAdmission(req, reply, tenancy);
  const generations = await generateChoices(serving, { ...servingRequest(body, input, limit, abort.signal), ...keyed }, body.n ?? 1);
  // With a key's limits the pool takes the request once they admit it (auth.ts notes that).
  if (!keyed.admit) noteAdmitted(req);
  const created = Math.floor(Date.now() / 1000);
  const chat = object === "chat.completion";
  const withLogprobs = sampling(body).logprobs !== undefined;

  if (!body.stream) {
    let results: GenerationResult[];
    try {
      results = await Promise.all(generations.map((g) => g.result));
    } catch (e) {
      throw why(e);
    }
    const choices = results.map((result, index) => {
      const logprobs = withLogprobs ? (chat ? chatLogprobs(result.logprobs ?? []) : completionLogprobs(result.logprobs ?? [])) : null;
      const syntax = generations[index]!.toolCallSyntax;
      const tools = syntax && input.kind === "chat" ? toolAnswer(result.text, result.finishReason, syntax, toolNames(input.tools)) : undefined;
      return chat
        ? { index, message: tools?.message ?? { role: "assistant", content: result.text }, logprobs, finish_reason: tools?.finish_reason ?? result.finishReason }
        : { index, text: result.text, logprobs, finish_reason: result.finishReason };
    });
    return { id: results[0]!.id, object, created, model: body.model, choices, usage: usage(results) };
  }
  return stream(req, reply, body, generations, created, chat, withLogprobs, why, toolNames(input.kind === "chat" ? input.tools : undefined));
}

/**
 * Streaming: errors found before the first byte still get a proper status (the handler
 * throws); later ones end the stream with an error event. With n choices, their chunks
 * interleave as their tokens come, each with its `index`.
 */
async function stream(
  req: FastifyRequest,
  reply: FastifyReply,
  body: ChatBody | CompletionBody,
  generations: Generation[],
  created: number,
  chat: boolean,
  withLogprobs: boolean,
  why: (e: unknown) => unknown,
  toolFunctionNames: string[] = [],
): Promise<FastifyReply> {
  const chunkObject = chat ? "chat.completion.chunk" : "text_completion";
  const id = generations[0]!.id;
  const chunk = (index: number, delta: unknown, finish: string | null, logprobs: unknown = null) => ({
    id,
    object: chunkObject,
    created,
    model: body.model,
    choices: [chat ? { index, delta, logprobs, finish_reason: finish } : { index, text: delta, logprobs, finish_reason: finish }],
  });
  let started = false;
  // Once the stream ended (a choice failed), the other choices' late pieces go nowhere.
  let ended = false;
  let corked = false;
  const write = (data: unknown): void => {
    if (ended) return;
    if (!started) {
      started = true;
      reply.hijack();
      // No Connection header of our own: Node's says keep-alive with the Keep-Alive timeout
      // hint a client needs to stop reusing a connection before the server closes it (or
      // close, when the client asked to). Ours suppressed the hint (issue 12).
      reply.raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      if (chat) for (const [index] of generations.entries()) reply.raw.write(`data: ${JSON.stringify(chunk(index, { role: "assistant", content: "" }, null))}\n\n`);
    }
    // Tokens come from the device in bursts: the chunks written in one turn of the event loop
    // leave in one socket write, not one system call (and one packet) per token.
    if (!corked) {
      corked = true;
      reply.raw.cork();
      setImmediate(() => {
        corked = false;
        // end() has flushed everything already (and the socket may serve the next request).
        if (!reply.raw.writableEnded) reply.raw.uncork();
      });
    }
    reply.raw.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  const one = async (g: Generation, index: number): Promise<GenerationResult> => {
    let textOffset = 0;
    // Offered tools, text passes on once it cannot start a call; calls come whole at the end.
    const tools = g.toolCallSyntax ? new ToolCallStream(g.toolCallSyntax, toolFunctionNames) : undefined;
    for await (const piece of g.detailed) {
      if (tools) {
        for (const delta of tools.push(piece.text)) write(chunk(index, delta, null));
        continue;
      }
      let logprobs: unknown = null;
      if (withLogprobs && piece.logprob) {
        logprobs = chat ? chatLogprobs([piece.logprob]) : completionLogprobs([piece.logprob], textOffset);
        textOffset += piece.logprob.token.length;
      }
      write(chunk(index, chat ? { content: piece.text } : piece.text, null, logprobs));
    }
    const result = await g.result;
    let finishReason: string = result.finishReason;
    if (tools) {
      const end = tools.end(result.finishReason);
      for (const delta of end.deltas) write(chunk(index, delta, null));
      finishReason = end.finishReason;
    }
    write(chunk(index, chat ? {} : "", finishReason));
    return result;
  };
  let results: GenerationResult[];
  try {
    results = await Promise.all(generations.map(one));
  } catch (thrown) {
    const e = why(thrown);
    ended = true;
    if (!started) throw e;
    const err = e instanceof PitcherError ? e : new PitcherError(String(e), "internal_error", 500, "server_error");
    noteErrorCode(req, err.code);
    if (!reply.raw.destroyed) {
      reply.raw.write(`data: ${JSON.stringify(errorBody(err))}\n\n`);
      reply.raw.end();
    }
    return reply;
  }
  if (body.stream_options?.include_usage) write({ id, object: chunkObject, created, model: body.model, choices: [], usage: usage(results) });
  reply.raw.write("data: [DONE]\n\n");
  reply.raw.end();
  return reply;
}

/** The prompt counts once however many choices there are (OpenAI's usage). */
function usage(results: GenerationResult[]): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const completion = results.reduce((sum, r) => sum + r.completionTokens, 0);
  return { prompt_tokens: results[0]!.promptTokens, completion_tokens: completion, total_tokens: results[0]!.promptTokens + completion };
}
