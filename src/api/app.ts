/**
 * The OpenAI-compatible HTTP API on Fastify: /v1/chat/completions, /v1/completions,
 * /v1/models, /health; and the operator's views: /metrics (Prometheus), /dashboard (live
 * page) with its server-sent event feed /dashboard/events. Errors of every kind leave through one handler as the OpenAI error
 * body with the right status.
 */
import { randomUUID } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import {
  BodyTooLargeError,
  ContextLengthError,
  InvalidRequestError,
  ModelNotFoundError,
  NotFoundError,
  OverloadedError,
  PitcherError,
  ShuttingDownError,
} from "../core/errors.ts";
import { dashboardHtml } from "../observe/dashboardHtml.ts";
import { LiveState } from "../observe/LiveState.ts";
import { PoolMetrics } from "../observe/PoolMetrics.ts";
import type { GenerationParams, GenerationResult, Pool } from "../runtime/Pool.ts";
import { chatBodySchema, completionBodySchema, parseBody, refuseUnsupported, type ChatBody, type CompletionBody } from "./requestSchemas.ts";

export interface AppOptions {
  bodyLimitBytes: number;
  logger?: boolean;
  /** Metrics and dashboard state of this pool (made here when not given). */
  metrics?: PoolMetrics;
  live?: LiveState;
  /** How often the dashboard feed pushes the pool's state. */
  dashboardPushMs?: number;
}

export function errorBody(e: PitcherError): { error: { message: string; type: string; param: string | null; code: string } } {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

function toPitcherError(err: unknown, bodyLimitBytes: number): PitcherError {
  if (err instanceof PitcherError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE") return new BodyTooLargeError(bodyLimitBytes);
  if (e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return new InvalidRequestError("Send the body as application/json", null, "invalid_content_type");
  if (e.code === "FST_ERR_CTP_EMPTY_JSON_BODY") return new InvalidRequestError("The request body is empty; send a JSON object", null, "invalid_json");
  if (e instanceof SyntaxError || e.code === "FST_ERR_CTP_INVALID_JSON_BODY")
    return new InvalidRequestError(`The request body is not valid JSON: ${e.message}`, null, "invalid_json");
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new PitcherError(e.message ?? "Bad request", "invalid_request", e.statusCode, "invalid_request_error");
  return new PitcherError(`Internal error: ${e.message ?? String(err)}`, "internal_error", 500, "server_error");
}

export function buildApp(pool: Pool, options: AppOptions): FastifyInstance {
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: options.bodyLimitBytes });

  app.setErrorHandler((err, _req, reply) => {
    const e = toPitcherError(err, options.bodyLimitBytes);
    if (e instanceof OverloadedError) void reply.header("retry-after", String(e.retryAfterSeconds));
    void reply.status(e.status).send(errorBody(e));
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new NotFoundError(`${req.method} ${req.url}`);
    void reply.status(404).send(errorBody(e));
  });
  app.addHook("onRequest", async () => {
    if (pool.isDraining) throw new ShuttingDownError();
  });

  app.get("/health", async () => ({
    status: pool.isDraining ? "draining" : "ok",
    activeRequests: pool.activeRequests,
    devices: pool.scheduler.snapshot().devices.map((d) => ({ id: d.id, up: !d.down, residentModels: d.residentModels.map((m) => m.modelId) })),
  }));

  const metrics = options.metrics ?? new PoolMetrics(pool);
  const live = options.live ?? new LiveState(pool);
  app.get("/metrics", async (_req, reply) => {
    void reply.header("content-type", metrics.contentType);
    return metrics.text();
  });

  app.get("/dashboard", async (_req, reply) => {
    void reply.header("content-type", "text/html; charset=utf-8");
    return dashboardHtml();
  });
  // Server push: the first message carries the whole window, later ones what is new.
  const feeds = new Set<() => void>();
  app.get("/dashboard/events", (req, reply) => {
    reply.hijack();
    reply.raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    let cursor = 0;
    const push = () => {
      const state = live.view(cursor);
      cursor = state.cursor;
      reply.raw.write(`event: state\ndata: ${JSON.stringify(state)}\n\n`);
    };
    push();
    const timer = setInterval(push, options.dashboardPushMs ?? 500);
    const end = () => {
      clearInterval(timer);
      feeds.delete(end);
      if (!reply.raw.destroyed) reply.raw.end();
    };
    feeds.add(end);
    req.raw.on("close", end);
  });
  app.addHook("preClose", async () => {
    for (const end of [...feeds]) end();
  });

  app.get("/v1/models", async () => ({
    object: "list",
    data: [...pool.models.values()].map((m) => ({
      id: m.id,
      object: "model",
      created: 0,
      owned_by: "pitcher",
      meta: {
        stand_in: m.standIn,
        description: m.description,
        architecture: m.architecture,
        ...(m.fileType ? { file_type: m.fileType } : {}),
        file_bytes: m.fileBytes,
        context_tokens: m.profile.contextTokens,
        ...(m.expertCount ? { experts: m.expertCount } : {}),
        slo: { ttft_ms: m.profile.slo.ttftMs, tbt_ms: m.profile.slo.tbtMs },
      },
    })),
  }));

  app.get("/v1/models/:id", async (req) => {
    const id = (req.params as { id: string }).id;
    const m = pool.models.get(id);
    if (!m) throw new ModelNotFoundError(id);
    return { id: m.id, object: "model", created: 0, owned_by: "pitcher" };
  });

  app.post("/v1/completions", async (req, reply) => {
    const body = parseBody(completionBodySchema, req.body) as CompletionBody;
    refuseUnsupported(body as Record<string, unknown>);
    const tok = tokenizerFor(pool, body.model);
    let prompt: number[];
    if (Array.isArray(body.prompt) && typeof body.prompt[0] === "number") {
      prompt = body.prompt as number[];
      const vocab = pool.models.get(body.model)!.vocabularySize;
      const bad = prompt.find((t) => t >= vocab);
      if (bad !== undefined) throw new InvalidRequestError(`Token id ${bad} is outside the model's vocabulary of ${vocab} tokens`, "prompt");
    } else {
      prompt = tok.completionPrompt(Array.isArray(body.prompt) ? (body.prompt[0] as string) : (body.prompt as string));
    }
    if (prompt.length === 0) throw new InvalidRequestError("The prompt is empty", "prompt");
    const params = generationParams(pool, body, prompt, [], body.max_tokens ?? 16, "prompt");
    return respond(pool, req, reply, body, params, "text_completion");
  });

  app.post("/v1/chat/completions", async (req, reply) => {
    const body = parseBody(chatBodySchema, req.body) as ChatBody;
    refuseUnsupported(body as Record<string, unknown>);
    const tok = tokenizerFor(pool, body.model);
    const { tokens, stopStrings } = tok.chatPrompt(
      body.messages.map((m) => ({
        role: m.role,
        content: typeof m.content === "string" ? m.content : (m.content ?? []).map((p) => p.text).join(""),
      })),
    );
    const params = generationParams(pool, body, tokens, stopStrings, body.max_completion_tokens ?? body.max_tokens ?? undefined, "messages");
    return respond(pool, req, reply, body, params, "chat.completion");
  });

  return app;
}

function tokenizerFor(pool: Pool, modelId: string) {
  if (!pool.models.has(modelId)) throw new ModelNotFoundError(modelId);
  return pool.codecs.get(modelId);
}

function generationParams(
  pool: Pool,
  body: ChatBody | CompletionBody,
  promptTokens: number[],
  templateStops: string[],
  maxTokens: number | undefined,
  promptParam: string,
): GenerationParams {
  const model = pool.models.get(body.model)!;
  const ctx = model.profile.contextTokens;
  if (promptTokens.length >= ctx)
    throw new ContextLengthError(
      `This model's context holds ${ctx} tokens, but the prompt is ${promptTokens.length} tokens (at least one more is needed for output).`,
      promptParam,
    );
  const room = ctx - promptTokens.length;
  const stops = body.stop === undefined || body.stop === null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  return {
    requestId: `${promptParam === "messages" ? "chatcmpl" : "cmpl"}-${randomUUID()}`,
    modelId: body.model,
    promptTokens,
    maxTokens: Math.min(maxTokens ?? room, room),
    sampling: {
      temperature: body.temperature ?? 1,
      ...(body.top_p !== undefined && body.top_p !== null ? { topP: body.top_p } : {}),
      ...(body.seed !== undefined && body.seed !== null ? { seed: body.seed } : {}),
    },
    stop: [...stops.filter((s) => s.length > 0), ...templateStops],
  };
}

async function respond(
  pool: Pool,
  req: FastifyRequest,
  reply: FastifyReply,
  body: ChatBody | CompletionBody,
  params: GenerationParams,
  object: "chat.completion" | "text_completion",
): Promise<unknown> {
  const abort = new AbortController();
  // The response closing before we finished means the client went away: cancel at once.
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) abort.abort();
  });
  params.signal = abort.signal;
  const created = Math.floor(Date.now() / 1000);
  const chat = object === "chat.completion";

  if (!body.stream) {
    const result = await pool.generate(params);
    return chat
      ? {
          id: result.id,
          object,
          created,
          model: body.model,
          choices: [{ index: 0, message: { role: "assistant", content: result.text }, logprobs: null, finish_reason: result.finishReason }],
          usage: usage(result),
        }
      : {
          id: result.id,
          object,
          created,
          model: body.model,
          choices: [{ index: 0, text: result.text, logprobs: null, finish_reason: result.finishReason }],
          usage: usage(result),
        };
  }

  // Streaming: errors found before the first byte still get a proper status; later ones
  // end the stream with an error event.
  const chunkObject = chat ? "chat.completion.chunk" : "text_completion";
  const id = params.requestId;
  let started = false;
  const write = (data: unknown): void => {
    if (!started) {
      started = true;
      reply.hijack();
      reply.raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      if (chat) reply.raw.write(`data: ${JSON.stringify(chunk(id, chunkObject, created, body.model, { role: "assistant", content: "" }, null, chat))}\n\n`);
    }
    reply.raw.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  params.onDelta = (text) => write(chunk(id, chunkObject, created, body.model, chat ? { content: text } : text, null, chat));
  let result: GenerationResult;
  try {
    result = await pool.generate(params);
  } catch (e) {
    if (!started) throw e;
    const err = e instanceof PitcherError ? e : new PitcherError(String(e), "internal_error", 500, "server_error");
    if (!reply.raw.destroyed) {
      reply.raw.write(`data: ${JSON.stringify(errorBody(err))}\n\n`);
      reply.raw.end();
    }
    return reply;
  }
  write(chunk(id, chunkObject, created, body.model, chat ? {} : "", result.finishReason, chat));
  if (body.stream_options?.include_usage) write({ id, object: chunkObject, created, model: body.model, choices: [], usage: usage(result) });
  reply.raw.write("data: [DONE]\n\n");
  reply.raw.end();
  return reply;
}

function chunk(id: string, object: string, created: number, model: string, delta: unknown, finish: string | null, chat: boolean): unknown {
  return {
    id,
    object,
    created,
    model,
    choices: [chat ? { index: 0, delta, logprobs: null, finish_reason: finish } : { index: 0, text: delta, logprobs: null, finish_reason: finish }],
  };
}

function usage(r: GenerationResult): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens };
}
