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

export class ContextLengthError extends PitcherError {
  constructor(message: string, param = "messages") {
    super(message, "context_length_exceeded", 400, "invalid_request_error", param);
  }
}

export class ModelNotFoundError extends PitcherError {
  constructor(model: string) {
    super(`The model '${model}' does not exist. GET /v1/models lists the models served here.`, "model_not_found", 404, "invalid_request_error", "model");
  }
}

export class NotFoundError extends PitcherError {
  constructor(what: string) {
    super(`${what} not found`, "not_found", 404, "invalid_request_error");
  }
}

export class BodyTooLargeError extends PitcherError {
  constructor(limitBytes: number) {
    super(`Request body exceeds ${limitBytes} bytes`, "request_too_large", 413, "invalid_request_error");
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
