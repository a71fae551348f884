/**
 * One HTTP answer as the operator's views count and log it: every answer the server gives,
 * successes and refusals alike, including those Node's HTTP parser gives before any route
 * runs. Never the prompt, never a header.
 */
export interface HttpOutcome {
  status: number;
  /** The OpenAI error code (`invalid_request`, `request_timeout`…), or `none` for a success. */
  code: string;
  /** The route's pattern (`/v1/chat/completions`); the path for an unknown route; null before routing. */
  route: string | null;
  method: string | null;
  /** The body's `model`, when the body was read and names one. */
  model: string | null;
  /** The request reached the pool, whose own log line and metrics already tell how it ended. */
  admitted: boolean;
  /** The API key's name, when keys are configured and the key was known. */
  tenant?: string;
}
