/**
 * The OpenAI-compatible HTTP API on Fastify: /v1/chat/completions, /v1/completions,
 * /v1/models, /health; and the operator's views: /metrics (Prometheus), /dashboard (live
 * page) with its server-sent event feed /dashboard/events. Errors of every kind leave
 * through one handler as the OpenAI error body with the right status.
 *
 * The app sees the runtime only through `Serving`; metrics and the dashboard's state come
 * in made (the composition root builds them from the pool).
 */
import Fastify, { type FastifyInstance } from "fastify";
import { ModelNotFoundError, NotFoundError, type PitcherError, retryAfterOf, ShuttingDownError } from "../core/errors.ts";
import type { HttpOutcome } from "../observe/HttpOutcome.ts";
import { dashboardHtml } from "../views/dashboardHtml.ts";
import type { Serving } from "../runtime/Serving.ts";
import { mayUseModel, registerAuth, type Tenancy, visibleModels } from "./auth.ts";
import { registerCompletionRoutes } from "./completionRoutes.ts";
import { type CorsSetting, registerCors } from "./cors.ts";
import { registerEmbeddingRoutes } from "./embeddingRoutes.ts";
import { errorBody, toPitcherError } from "./errorBody.ts";
import {
  clientErrorHandler,
  expectationHandler,
  frameworkErrorHandler,
  refuseContentEncoding,
  type HttpTimeouts,
  MAX_PATH_PARAM_CHARS,
  noteErrorCode,
  outcomeOf,
  refuseWithoutHost,
  serverOptions,
} from "./httpEdges.ts";
import { InFlightRequests } from "./InFlightRequests.ts";

/** Prometheus text of the pool, at scrape time. */
export interface MetricsSource {
  readonly contentType: string;
  text(): Promise<string>;
}

/** The dashboard's state: everything new after `cursor`, and the cursor to ask from next. */
export interface LiveSource {
  view(cursor: number): { cursor: number };
}

export interface AppOptions {
  bodyLimitBytes: number;
  timeouts: HttpTimeouts;
  /** Off when absent or false (`server.cors`). */
  cors?: CorsSetting;
  logger?: boolean;
  metrics: MetricsSource;
  live: LiveSource;
  /** How often the dashboard feed pushes the pool's state. */
  dashboardPushMs?: number;
  /** Told of every HTTP answer, refusals before any route included (metrics, request log). */
  onHttpOutcome?: (o: HttpOutcome) => void;
  /** The generation requests being answered: a shutdown past its deadline ends them through it. */
  inFlight?: InFlightRequests;
  /** API keys and their limits; absent: the API is open. */
  tenancy?: Tenancy;
  /** Refuses a request before any route sees it, with the error returned (a fleet node that cannot renew its record). */
  refuse?: (req: { method: string; url: string; headers: Record<string, string | string[] | undefined> }) => PitcherError | undefined;
}

export function buildApp(serving: Serving, options: AppOptions): FastifyInstance {
  const record = options.onHttpOutcome ?? (() => {});
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimitBytes,
    ...serverOptions(options.timeouts),
    // A `__proto__` key (or a `constructor` holding `prototype`) is dropped from the body
    // before validation: it means nothing in the OpenAI API and could poison what reads it.
    onProtoPoisoning: "remove",
    onConstructorPoisoning: "remove",
    // While closing, requests on open connections reach the onRequest hook below (503
    // shutting_down in our body) instead of Fastify's own 503 body.
    return503OnClosing: false,
    routerOptions: { maxParamLength: MAX_PATH_PARAM_CHARS },
    frameworkErrors: frameworkErrorHandler(record),
    clientErrorHandler: clientErrorHandler(options.timeouts, record),
  });

  registerCors(app, options.cors);
  app.setErrorHandler((err, req, reply) => {
    const e = toPitcherError(err, options.bodyLimitBytes);
    const retryAfter = retryAfterOf(e);
    if (retryAfter !== undefined) void reply.header("retry-after", String(retryAfter));
    // Shutting down: let a keep-alive client go, so the server can close.
    if (e instanceof ShuttingDownError) void reply.header("connection", "close");
    noteErrorCode(req, e.code);
    void reply.status(e.status).send(errorBody(e));
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new NotFoundError(`${req.method} ${req.url}`);
    noteErrorCode(req, e.code);
    void reply.status(404).send(errorBody(e));
  });
  app.addHook("onResponse", async (req, reply) => {
    record(outcomeOf(req, reply.statusCode));
  });
  app.server.on("checkExpectation", expectationHandler(record));
  app.addHook("onRequest", async (req) => {
    refuseWithoutHost(req);
    refuseContentEncoding(req);
    if (serving.draining) throw new ShuttingDownError();
    const refused = options.refuse?.(req);
    if (refused) throw refused;
  });
  registerAuth(app, options.tenancy);

  app.get("/health", async () => serving.health());

  const { metrics, live } = options;
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
    // No Connection header of our own: Node's says keep-alive with the Keep-Alive timeout
    // hint a client needs to stop reusing a connection before the server closes it (or
    // close, when the client asked to). Ours suppressed the hint (issue 12).
    reply.raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
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

  app.get("/v1/models", async (req) => ({
    object: "list",
    data: visibleModels(req, serving.models()).map((m) => ({
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
        ...(m.embedding ? { embedding: true } : {}),
        slo: { ttft_ms: m.profile.slo.ttftMs, tbt_ms: m.profile.slo.tbtMs },
      },
    })),
  }));

  app.get("/v1/models/:id", async (req) => {
    const id = (req.params as { id: string }).id;
    const m = serving.model(id);
    if (!m || !mayUseModel(req, id)) throw new ModelNotFoundError(id);
    return { id: m.id, object: "model", created: 0, owned_by: "pitcher" };
  });

  const inFlight = options.inFlight ?? new InFlightRequests();
  registerCompletionRoutes(app, serving, inFlight, options.tenancy);
  registerEmbeddingRoutes(app, serving, inFlight);
  return app;
}
