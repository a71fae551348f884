/**
 * POST /v1/chat/completions and /v1/completions: the OpenAI body in, a `ServingRequest` to
 * the runtime, and its pieces and result out in the OpenAI wire format, whole or as
 * server-sent events (one chunk per token).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PitcherError } from "../core/errors.ts";
import type { Generation, GenerationResult, Serving, ServingInput, ServingRequest } from "../runtime/Serving.ts";
import { errorBody } from "./errorBody.ts";
import { noteAdmitted, noteErrorCode } from "./httpEdges.ts";
import type { InFlightRequests } from "./InFlightRequests.ts";
import { chatBodySchema, completionBodySchema, parseBody, refuseUnsupported, type ChatBody, type CompletionBody } from "./requestSchemas.ts";
import { chatMessages, ToolCallStream, toolAnswer, toolNames, toolsRequest } from "./toolCalls.ts";

/** OpenAI's default for /v1/completions (cut to what the context holds); chat completions default to all of it. */
const COMPLETION_DEFAULT_MAX_TOKENS = 16;

/** What the client asked of the output's length, and the field it used. */
interface MaxTokens {
  maxTokens?: number;
  maxTokensParam?: string;
  defaultMaxTokens?: number;
}

export function registerCompletionRoutes(app: FastifyInstance, serving: Serving, inFlight: InFlightRequests): void {
  app.post("/v1/completions", async (req, reply) => {
    const body = parseBody(completionBodySchema, req.body) as CompletionBody;
    refuseUnsupported(body as Record<string, unknown>);
    const prompt = Array.isArray(body.prompt) && typeof body.prompt[0] === "string" ? (body.prompt[0] as string) : (body.prompt as string | number[]);
    const limit = typeof body.max_tokens === "number" ? { maxTokens: body.max_tokens } : { defaultMaxTokens: COMPLETION_DEFAULT_MAX_TOKENS };
    return answer(serving, inFlight, req, reply, body, { kind: "completion", prompt }, limit, "text_completion");
  });

  app.post("/v1/chat/completions", async (req, reply) => {
    const body = parseBody(chatBodySchema, req.body) as ChatBody;
    refuseUnsupported(body as Record<string, unknown>);
    const tools = toolsRequest(body);
    const messages = chatMessages(body.messages);
    const limit =
      typeof body.max_completion_tokens === "number"
        ? { maxTokens: body.max_completion_tokens, maxTokensParam: "max_completion_tokens" }
        : typeof body.max_tokens === "number"
          ? { maxTokens: body.max_tokens }
          : {};
    return answer(serving, inFlight, req, reply, body, { kind: "chat", messages, ...(tools ? { tools } : {}) }, limit, "chat.completion");
  });
}

function servingRequest(body: ChatBody | CompletionBody, input: ServingInput, limit: MaxTokens, signal: AbortSignal): ServingRequest {
  return {
    modelId: body.model,
    input,
    ...limit,
    sampling: {
      temperature: body.temperature ?? 1,
      ...(body.top_p !== undefined && body.top_p !== null ? { topP: body.top_p } : {}),
      ...(body.seed !== undefined && body.seed !== null ? { seed: body.seed } : {}),
    },
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
): Promise<unknown> {
  const abort = new AbortController();
  // The response closing before we finished means the client went away: cancel at once.
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) abort.abort();
  });
  inFlight.track(abort, reply.raw);
  // A shutdown past its deadline aborts with its own error: the client gets that, not "cancelled".
  const why = (e: unknown): unknown => (abort.signal.reason instanceof PitcherError ? abort.signal.reason : e);
  const generation = serving.generate(servingRequest(body, input, limit, abort.signal));
  noteAdmitted(req);
  const created = Math.floor(Date.now() / 1000);
  const chat = object === "chat.completion";

  if (!body.stream) {
    let result: GenerationResult;
    try {
      result = await generation.result;
    } catch (e) {
      throw why(e);
    }
    const tools = generation.toolCallSyntax && input.kind === "chat" ? toolAnswer(result.text, result.finishReason, generation.toolCallSyntax, toolNames(input.tools)) : undefined;
    const choice = chat
      ? { index: 0, message: tools?.message ?? { role: "assistant", content: result.text }, logprobs: null, finish_reason: tools?.finish_reason ?? result.finishReason }
      : { index: 0, text: result.text, logprobs: null, finish_reason: result.finishReason };
    return { id: result.id, object, created, model: body.model, choices: [choice], usage: usage(result) };
  }
  const tools = generation.toolCallSyntax && input.kind === "chat" ? new ToolCallStream(generation.toolCallSyntax, toolNames(input.tools)) : undefined;
  return stream(req, reply, body, generation, created, chat, why, tools);
}

/**
 * Streaming: errors found before the first byte still get a proper status (the handler
 * throws); later ones end the stream with an error event.
 */
async function stream(
  req: FastifyRequest,
  reply: FastifyReply,
  body: ChatBody | CompletionBody,
  generation: Generation,
  created: number,
  chat: boolean,
  why: (e: unknown) => unknown,
  tools?: ToolCallStream,
): Promise<FastifyReply> {
  const chunkObject = chat ? "chat.completion.chunk" : "text_completion";
  const id = generation.id;
  const chunk = (delta: unknown, finish: string | null) => ({
    id,
    object: chunkObject,
    created,
    model: body.model,
    choices: [chat ? { index: 0, delta, logprobs: null, finish_reason: finish } : { index: 0, text: delta, logprobs: null, finish_reason: finish }],
  });
  let started = false;
  const write = (data: unknown): void => {
    if (!started) {
      started = true;
      reply.hijack();
      reply.raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      if (chat) reply.raw.write(`data: ${JSON.stringify(chunk({ role: "assistant", content: "" }, null))}\n\n`);
    }
    reply.raw.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  let result: GenerationResult;
  try {
    for await (const piece of generation.pieces) {
      if (tools) for (const delta of tools.push(piece)) write(chunk(delta, null));
      else write(chunk(chat ? { content: piece } : piece, null));
    }
    result = await generation.result;
  } catch (thrown) {
    const e = why(thrown);
    if (!started) throw e;
    const err = e instanceof PitcherError ? e : new PitcherError(String(e), "internal_error", 500, "server_error");
    noteErrorCode(req, err.code);
    if (!reply.raw.destroyed) {
      reply.raw.write(`data: ${JSON.stringify(errorBody(err))}\n\n`);
      reply.raw.end();
    }
    return reply;
  }
  let finishReason: string = result.finishReason;
  if (tools) {
    const end = tools.end(result.finishReason);
    for (const delta of end.deltas) write(chunk(delta, null));
    finishReason = end.finishReason;
  }
  write(chunk(chat ? {} : "", finishReason));
  if (body.stream_options?.include_usage) write({ id, object: chunkObject, created, model: body.model, choices: [], usage: usage(result) });
  reply.raw.write("data: [DONE]\n\n");
  reply.raw.end();
  return reply;
}

function usage(r: GenerationResult): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens };
}
