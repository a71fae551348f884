/**
 * The one place errors become the OpenAI error body: every `PitcherError` as it is, and
 * Fastify's own errors (body parsing, size limit) mapped to the same classes first.
 */
import { BodyTooLargeError, InvalidRequestError, MalformedRequestError, PitcherError } from "../core/errors.ts";

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

export function errorBody(e: PitcherError): ErrorBody {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

export function toPitcherError(err: unknown, bodyLimitBytes?: number): PitcherError {
  if (err instanceof PitcherError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE" && bodyLimitBytes !== undefined) return new BodyTooLargeError(bodyLimitBytes);
  if (e.code === "FST_ERR_CTP_INVALID_CONTENT_LENGTH") return new MalformedRequestError("The body's length does not match its content-length header", "invalid_content_length");
  if (e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return new InvalidRequestError("Send the body as application/json", null, "invalid_content_type");
  if (e.code === "FST_ERR_CTP_EMPTY_JSON_BODY") return new InvalidRequestError("The request body is empty; send a JSON object", null, "invalid_json");
  if (e instanceof SyntaxError || e.code === "FST_ERR_CTP_INVALID_JSON_BODY")
    return new InvalidRequestError(`The request body is not valid JSON: ${e.message}`, null, "invalid_json");
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new PitcherError(e.message ?? "Bad request", "invalid_request", e.statusCode, "invalid_request_error");
  return new PitcherError(`Internal error: ${e.message ?? String(err)}`, "internal_error", 500, "server_error");
}
