/**
 * Every error a user can meet, as a class with a stable code, an HTTP status and an
 * OpenAI error type. The API maps them to the OpenAI error body in one place.
 */
export class PitcherError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
    readonly type: string,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class InvalidRequestError extends PitcherError {
  constructor(message: string, param: string | null = null, code = "invalid_request") {
    super(message, code, 400, "invalid_request_error", param);
  }
}

export class UnsupportedOptionError extends PitcherError {
  constructor(message: string, param: string) {
    super(message, "unsupported_option", 400, "invalid_request_error", param);
  }
}

/** A JSON-schema keyword the output grammar cannot enforce: refused, never silently ignored. */
export class UnsupportedSchemaKeywordError extends PitcherError {
  constructor(message: string, param: string) {
    super(message, "unsupported_schema_keyword", 400, "invalid_request_error", param);
  }
}

export class ContextLengthError extends PitcherError {
  constructor(message: string, param = "messages") {
    super(message, "context_length_exceeded", 400, "invalid_request_error", param);
  }
}

/** Longest client-chosen name an error message repeats. */
const MAX_ECHOED_CHARS = 200;

export class ModelNotFoundError extends PitcherError {
  constructor(model: string) {
    // The name is the client's: a megabyte of it is not echoed back.
    const shown = model.length > MAX_ECHOED_CHARS ? `${model.slice(0, MAX_ECHOED_CHARS)}…` : model;
    super(`The model '${shown}' does not exist. GET /v1/models lists the models served here.`, "model_not_found", 404, "invalid_request_error", "model");
  }
}

/** The model exists but does not do what was asked: embeddings of a generating model, text from an embedding model. */
export class WrongModelKindError extends PitcherError {
  constructor(message: string, code: "model_cannot_embed" | "model_only_embeds") {
    super(message, code, 400, "invalid_request_error", "model");
  }
}

export class NotFoundError extends PitcherError {
  constructor(what: string) {
    super(`${what} not found`, "not_found", 404, "invalid_request_error");
  }
}

export class BodyTooLargeError extends PitcherError {
  constructor(limitBytes: number) {
    super(`The request body exceeds ${limitBytes} bytes, the most this server accepts (server.bodyLimitBytes)`, "request_too_large", 413, "invalid_request_error");
  }
}

export class PromptTooLargeError extends PitcherError {
  constructor(promptBytes: number, limitBytes: number, param: string) {
    super(
      `The prompt is ${promptBytes} bytes of text, more than the ${limitBytes} bytes this server accepts in one request (server.maxPromptBytes)`,
      "prompt_too_large",
      413,
      "invalid_request_error",
      param,
    );
  }
}

export class OverloadedError extends PitcherError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message, "rate_limit_exceeded", 429, "rate_limit_error");
  }
}

/**
 * An admitted request waited for a device past its TTFT target by more than the late-wait
 * cap (`scheduler.lateWaitCapFactor`) without starting: the server ended it rather than let
 * it take a device from requests that can still be served in time.
 */
export class SloWaitExceededError extends PitcherError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(`${message}. Retry in ${retryAfterSeconds} s.`, "slo_wait_exceeded", 503, "server_error");
  }
}

export class ShuttingDownError extends PitcherError {
  constructor(message = "The server is shutting down and accepts no new requests") {
    super(message, "shutting_down", 503, "server_error");
  }
}

/** The HTTP request itself could not be read: a malformed request line, URL, header or length. */
export class MalformedRequestError extends PitcherError {
  constructor(message: string, code: "malformed_request" | "invalid_url" | "invalid_content_length" = "malformed_request") {
    super(message, code, 400, "invalid_request_error");
  }
}

export class ExpectationFailedError extends PitcherError {
  constructor() {
    super("Only `Expect: 100-continue` is supported", "expectation_failed", 417, "invalid_request_error");
  }
}

/** A body sent compressed (`Content-Encoding: gzip`, say): the server reads bodies as sent. */
export class UnsupportedContentEncodingError extends PitcherError {
  constructor(encoding: string) {
    super(`Content-Encoding ${JSON.stringify(encoding.slice(0, 40))} is not supported: send the body uncompressed`, "unsupported_content_encoding", 415, "invalid_request_error");
  }
}

export class UrlTooLongError extends PitcherError {
  constructor(limitChars: number) {
    super(`A path segment of the URL exceeds ${limitChars} characters`, "url_too_long", 414, "invalid_request_error");
  }
}

export class RequestTimeoutError extends PitcherError {
  constructor(headersTimeoutMs: number, requestTimeoutMs: number) {
    super(
      `The request did not arrive in time: its headers must arrive within ${headersTimeoutMs} ms and the whole request, body included, within ${requestTimeoutMs} ms`,
      "request_timeout",
      408,
      "invalid_request_error",
    );
  }
}

export class HeadersTooLargeError extends PitcherError {
  constructor(limitBytes: number) {
    super(`The request's headers exceed ${limitBytes} bytes`, "headers_too_large", 431, "invalid_request_error");
  }
}

export class DeviceFailedError extends PitcherError {
  constructor(message: string) {
    super(message, "device_failed", 500, "server_error");
  }
}

export class KvRestoreFailedError extends PitcherError {
  constructor(message: string) {
    super(`${message}; the request was ended and can be retried`, "kv_restore_failed", 500, "server_error");
  }
}

export class ConfigError extends PitcherError {
  constructor(message: string) {
    super(message, "invalid_config", 500, "server_error");
  }
}

/** No API key, or one this server does not know (401, as OpenAI answers). */
export class InvalidApiKeyError extends PitcherError {
  constructor(message = "Missing or unknown API key: send `Authorization: Bearer <key>` with a key this server knows") {
    super(message, "invalid_api_key", 401, "invalid_request_error");
  }
}

/** A key's requests or tokens per minute are used up (OpenAI's type is `requests` or `tokens`). */
export class RateLimitError extends PitcherError {
  constructor(
    message: string,
    readonly limit: "requests" | "tokens",
    readonly retryAfterSeconds: number,
  ) {
    super(message, "rate_limit_exceeded", 429, limit);
  }
}

/** A key's token budget for the period is used up. */
export class InsufficientQuotaError extends PitcherError {
  constructor(message: string) {
    super(message, "insufficient_quota", 429, "insufficient_quota");
  }
}
/**
 * A fleet's shared limits (token budgets, or rates with `cluster.whenRedisDown.rates:
 * refuse`) cannot be checked because Redis is unreachable, and the configuration says to
 * refuse rather than admit unchecked. Not the client's fault (503), and the same at every
 * node, so a router passes it through rather than re-sending it.
 */
export class LimitsUnavailableError extends PitcherError {
  readonly retryAfterSeconds = 1;
  constructor(what: "budget" | "rate limits", tenant: string) {
    super(`The ${what} of key '${tenant}' cannot be checked: the fleet's Redis is unreachable. Retry in 1 s.`, "limits_unavailable", 503, "server_error");
  }
}

/** A fleet node is draining: the request was not started, and a router sends it to another node. */
export class NodeDrainingError extends PitcherError {
  readonly retryAfterSeconds = 1;
  constructor(message = "This node is draining and hands the request back; send it to another node") {
    super(message, "node_draining", 503, "server_error");
  }
}

/** A fleet node cannot renew its record in Redis, so routers with a live view count it as gone: it takes no work from them. */
export class NodeUnavailableError extends PitcherError {
  readonly retryAfterSeconds = 1;
  constructor(message = "This node cannot renew its fleet record and takes no routed work; send the request to another node") {
    super(message, "node_unavailable", 503, "server_error");
  }
}

/** A router found no node for the request (none fresh and serving the model, or every try failed). */
export class NoNodeAvailableError extends PitcherError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message, "no_node_available", 503, "server_error");
  }
}

/** The node serving a stream failed after its first byte: the stream ends with this error event and no `[DONE]`. */
export class NodeFailedError extends PitcherError {
  constructor(message: string) {
    super(message, "node_failed", 502, "server_error");
  }
}

/** The error asks the client to come back after `retryAfterSeconds` (the API sends it as `Retry-After`). */
export function retryAfterOf(e: PitcherError): number | undefined {
  const s = (e as { retryAfterSeconds?: unknown }).retryAfterSeconds;
  return typeof s === "number" ? s : undefined;
}
