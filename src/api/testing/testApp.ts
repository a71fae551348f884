// The HTTP API over the real serving facade on a fake pool, as the in-process tests and the
// real-socket tests build it.
import assert from "node:assert/strict";
import type { Codecs } from "../../core/codec.ts";
import type { HttpOutcome } from "../../observe/HttpOutcome.ts";
import { FakeServingPool, fakeCodecs, fakeModel } from "../../runtime/testing/FakeServingPool.ts";
import { PoolServing } from "../../runtime/Serving.ts";
import { type AppOptions, buildApp } from "../app.ts";
import type { HttpTimeouts } from "../httpEdges.ts";
import { InFlightRequests } from "../InFlightRequests.ts";

export const BODY_LIMIT_BYTES = 4096;
export const TIMEOUTS: HttpTimeouts = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000 };

/** An app over one fake model "tiny" with a 128-token context; every HTTP outcome it reports is kept. */
export function setup(timeouts: HttpTimeouts = TIMEOUTS, extra: Partial<AppOptions> = {}, codecs: Codecs = fakeCodecs) {
  const pool = new FakeServingPool([fakeModel("tiny", 128, 1000)]);
  const metrics = { contentType: "text/plain; version=0.0.4; charset=utf-8", text: async () => "pitcher_up 1\n" };
  const live = { view: (cursor: number) => ({ cursor: cursor + 1, segments: [] }) };
  const outcomes: HttpOutcome[] = [];
  const inFlight = new InFlightRequests();
  const app = buildApp(new PoolServing(pool, codecs), {
    bodyLimitBytes: BODY_LIMIT_BYTES,
    timeouts,
    metrics,
    live,
    onHttpOutcome: (o) => outcomes.push(o),
    inFlight,
    ...extra,
  });
  const post = async (url: string, body: unknown) => {
    const res = await app.inject({ method: "POST", url, headers: { "content-type": "application/json" }, payload: typeof body === "string" ? body : JSON.stringify(body) });
    // biome-ignore lint/suspicious/noExplicitAny: a test asserts on JSON bodies of open shape (as *.test.ts files may)
    let json: any;
    try {
      json = res.json();
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, headers: res.headers, json, body: res.body };
  };
  return { pool, app, post, outcomes, inFlight };
}

// biome-ignore lint/suspicious/noExplicitAny: a test asserts on JSON bodies of open shape (as *.test.ts files may)
export function assertOpenAiError(res: { status: number | null; json: any }, status: number, code: string): void {
  assert.equal(res.status, status, JSON.stringify(res.json));
  assert.equal(typeof res.json.error.message, "string");
  assert.equal(typeof res.json.error.type, "string");
  assert.ok("param" in res.json.error);
  assert.equal(res.json.error.code, code);
}

/** The `data:` payloads of a server-sent event stream. */
export function events(body: string): string[] {
  assert.ok(body.endsWith("\n\n"), "every event ends with a blank line");
  return body
    .split("\n\n")
    .filter((e) => e.length > 0)
    .map((e) => {
      assert.ok(e.startsWith("data: "), e);
      return e.slice("data: ".length);
    });
}

/** Let the event loop turn until `cond` holds (for hooks that run after the answer left). */
export async function until(cond: () => boolean, turns = 1000): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i >= turns) throw new Error("condition not reached");
    await new Promise((r) => setImmediate(r));
  }
}
