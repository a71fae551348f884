/**
 * The edges of HTTP that no route sees: requests Node's parser refuses (malformed, headers
 * too large, timed out), URLs the router cannot decode, and the server's timeouts. Their
 * answers leave in the OpenAI error body like every other error, and every answer is told
 * to the operator's views as an `HttpOutcome`.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import {
  ExpectationFailedError,
  HeadersTooLargeError,
  MalformedRequestError,
  type PitcherError,
  RequestTimeoutError,
  UnsupportedContentEncodingError,
  UrlTooLongError,
} from "../core/errors.ts";
import type { HttpOutcome } from "../observe/HttpOutcome.ts";
import { errorBody, toPitcherError } from "./errorBody.ts";

export interface HttpTimeouts {
  /** All request headers within this time, or 408. */
  headersTimeoutMs: number;
  /** The whole request, body included, within this time, or 408 (receiving only: responses are not cut). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this time. */
  keepAliveTimeoutMs: number;
}

/** Longest path segment the router takes (a model id in `/v1/models/:id`); longer is 414. */
export const MAX_PATH_PARAM_CHARS = 256;
/** Longest route or model name written to the log and metrics: a hostile client picks them. */
const MAX_LOGGED_CHARS = 200;

/** Fastify's and Node's server options: the timeouts, and no answers of Node's own. */
export function serverOptions(t: HttpTimeouts) {
  return {
    requestTimeout: t.requestTimeoutMs,
    keepAliveTimeout: t.keepAliveTimeoutMs,
    http: {
      // Node answers an HTTP/1.1 request without a Host header with its own empty 400; let
      // it through to `refuseWithoutHost`, which refuses it in our body.
      requireHostHeader: false,
      headersTimeout: t.headersTimeoutMs,
      requestTimeout: t.requestTimeoutMs,
      keepAliveTimeout: t.keepAliveTimeoutMs,
      // Node looks for timed-out requests on this interval (30 s by default), so a timeout
      // fires up to one interval late: check a few times per timeout, at most once a second.
      connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(Math.min(t.headersTimeoutMs, t.requestTimeoutMs) / 4))),
    },
  };
}

/** HTTP/1.1 requires a Host header (RFC 9112 §3.2); Node's own check is off (see `serverOptions`). */
export function refuseWithoutHost(req: FastifyRequest): void {
  if (req.raw.httpVersion === "1.1" && req.headers.host === undefined) throw new MalformedRequestError("An HTTP/1.1 request must send a Host header");
}

/**
 * A compressed body would reach the JSON parser as binary and be told it is "not valid JSON";
 * say what is wrong instead (RFC 9110 §8.4.1: 415 for a content coding the server does not take).
 */
export function refuseContentEncoding(req: FastifyRequest): void {
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") throw new UnsupportedContentEncodingError(encoding);
}

/** What a handler learned of a request that its answer's status does not tell. */
const notes = new WeakMap<object, { code?: string; admitted?: boolean; tenant?: string }>();

/** The answer carries this error code (a stream may end with one after a 200). */
export function noteErrorCode(req: FastifyRequest, code: string): void {
  notes.set(req.raw, { ...notes.get(req.raw), code });
}

/** The pool took the request: its own log line and metrics tell how it ended. */
export function noteAdmitted(req: FastifyRequest): void {
  notes.set(req.raw, { ...notes.get(req.raw), admitted: true });
}

/** The request's API key is this tenant's (its name; never the key). */
export function noteTenant(req: FastifyRequest, tenant: string): void {
  notes.set(req.raw, { ...notes.get(req.raw), tenant });
}

export function outcomeOf(req: FastifyRequest, status: number): HttpOutcome {
  const note = notes.get(req.raw);
  const model = (req.body as { model?: unknown } | null | undefined)?.model;
  return {
    status,
    code: note?.code ?? (status < 400 ? "none" : `http_${status}`),
    route: (req.routeOptions.url ?? req.url.split("?")[0]!).slice(0, MAX_LOGGED_CHARS),
    method: req.method,
    model: typeof model === "string" ? model.slice(0, MAX_LOGGED_CHARS) : null,
    admitted: note?.admitted ?? false,
    ...(note?.tenant ? { tenant: note.tenant } : {}),
  };
}

/**
 * Requests the router refuses before any route or hook runs (a URL that does not decode, a
 * path segment too long). Fastify's hooks do not see these answers, so this tells them itself.
 */
export function frameworkErrorHandler(record: (o: HttpOutcome) => void) {
  return (error: FastifyError, req: FastifyRequest, reply: FastifyReply): void => {
    const e =
      error.code === "FST_ERR_BAD_URL"
        ? new MalformedRequestError("The URL is not valid: its path does not decode (a stray or broken %-escape)", "invalid_url")
        : error.code === "FST_ERR_MAX_PARAM_LENGTH"
          ? new UrlTooLongError(MAX_PATH_PARAM_CHARS)
          : toPitcherError(error);
    reply.raw.once("finish", () => record({ status: e.status, code: e.code, route: null, method: req.method, model: null, admitted: false }));
    void reply.status(e.status).send(errorBody(e));
  };
}

/**
 * Node's `clientError`: the parser refused the bytes (malformed request, headers over
 * `http.maxHeaderSize`, a bad content-length) or a request timed out. There is no request
 * object, only the socket: answer on it in the OpenAI error body and close it.
 */
export function clientErrorHandler(t: HttpTimeouts, record: (o: HttpOutcome) => void) {
  return (err: Error & { code?: string }, socket: Socket): void => {
    // A reset or a socket already gone: nobody to answer.
    if (err.code === "ECONNRESET" || socket.destroyed) {
      socket.destroy();
      return;
    }
    // Node's own rule: answer only where no response has started on this socket (say, a 413
    // sent while the client still uploads), or our bytes would land inside that response.
    const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage?.headersSent === true;
    if (!socket.writable || started) {
      socket.destroy();
      return;
    }
    const e = clientError(err.code, t);
    record({ status: e.status, code: e.code, route: null, method: null, model: null, admitted: false });
    const body = JSON.stringify(errorBody(e));
    const head = `HTTP/1.1 ${e.status} ${http.STATUS_CODES[e.status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n`;
    // Close once the answer is flushed (destroying at once could drop it).
    socket.end(head + body, () => socket.destroy());
  };
}

function clientError(code: string | undefined, t: HttpTimeouts): PitcherError {
  switch (code) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return new RequestTimeoutError(t.headersTimeoutMs, t.requestTimeoutMs);
    case "HPE_HEADER_OVERFLOW":
      return new HeadersTooLargeError(http.maxHeaderSize);
    case "HPE_INVALID_CONTENT_LENGTH":
    case "HPE_UNEXPECTED_CONTENT_LENGTH":
      return new MalformedRequestError("The content-length header is not valid: send one non-negative integer, and not with transfer-encoding", "invalid_content_length");
    case "HPE_INVALID_URL":
      return new MalformedRequestError("The request's URL is not valid", "invalid_url");
    default:
      return new MalformedRequestError(`The HTTP request is malformed (${code ?? "unreadable"})`);
  }
}

/**
 * Node's `checkExpectation`: an `Expect` header other than 100-continue, which Node would
 * answer with its own empty 417. No route runs, so this tells the outcome itself.
 */
export function expectationHandler(record: (o: HttpOutcome) => void) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const e = new ExpectationFailedError();
    const body = JSON.stringify(errorBody(e));
    res.once("finish", () => record({ status: e.status, code: e.code, route: null, method: req.method ?? null, model: null, admitted: false }));
    res.writeHead(e.status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body), connection: "close" });
    res.end(body);
  };
}
