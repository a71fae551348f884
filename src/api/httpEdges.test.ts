// The HTTP layer's own edges on a real listening server (the serving facade on a fake pool
// behind it): what Node's parser refuses, the timeouts, keep-alive. Raw sockets send what
// well-behaved clients never do.
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { after, before, describe, it } from "node:test";
import type { Answer } from "../runtime/testing/FakeServingPool.ts";
import { rawExchange } from "./testing/rawHttp.ts";
import { assertOpenAiError, setup } from "./testing/testApp.ts";

const SHORT = { headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 300 };
/** These happen within a few hundred ms; the bound only tells "late" from "never". */
const BOUND_MS = 15_000;

const slowBody = 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":';

describe("HTTP edges on a real socket", () => {
  const { app, pool, outcomes } = setup(SHORT);
  let port = 0;
  before(async () => {
    await app.listen({ host: "127.0.0.1", port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });
  after(() => app.close());

  it("a URL the router cannot decode is 400 invalid_url in the OpenAI body", async () => {
    const r = await rawExchange(port, "GET /v1/models/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assertOpenAiError(r, 400, "invalid_url");
    assert.match(r.headers["content-type"]!, /^application\/json/);
  });

  it("a request the parser refuses is 400 in the OpenAI body, and the connection closes", async () => {
    assertOpenAiError(await rawExchange(port, "HELLO\r\n\r\n"), 400, "malformed_request");
    assertOpenAiError(await rawExchange(port, "GET /v1/mo dels HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "malformed_request");
  });

  it("what Node would answer with its own empty body: a missing Host header 400, an Expect it does not know 417", async () => {
    assertOpenAiError(await rawExchange(port, "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n"), 400, "malformed_request");
    assertOpenAiError(await rawExchange(port, "GET /v1/models HTTP/1.1\r\nHost: x\r\nExpect: much\r\nConnection: close\r\n\r\n"), 417, "expectation_failed");
  });

  it("a content-length that is not a number is 400 invalid_content_length", async () => {
    const r = await rawExchange(port, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}");
    assertOpenAiError(r, 400, "invalid_content_length");
  });

  it("headers over Node's limit are 431 headers_too_large", async () => {
    const r = await rawExchange(port, `GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    assertOpenAiError(r, 431, "headers_too_large");
  });

  it("a client that sends its headers and part of a body, then nothing, is answered 408 and closed", async () => {
    const startedMs = Date.now();
    const r = await rawExchange(port, slowBody);
    assertOpenAiError(r, 408, "request_timeout");
    assert.ok(Date.now() - startedMs < BOUND_MS);
    assert.equal(pool.calls.length, 0);
  });

  it("a client that stops halfway through its headers is answered 408 and closed", async () => {
    const startedMs = Date.now();
    const r = await rawExchange(port, "GET /v1/models HTTP/1.1\r\nHost: x\r\n");
    assertOpenAiError(r, 408, "request_timeout");
    assert.ok(Date.now() - startedMs < BOUND_MS);
  });

  it("a client that connects and sends nothing is answered 408 and closed after the headers timeout", async () => {
    const r = await rawExchange(port, "");
    assertOpenAiError(r, 408, "request_timeout");
  });

  it("an idle keep-alive connection is closed after the keep-alive timeout", async () => {
    const r = await rawExchange(port, "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(r.status, 200);
    assert.equal(r.json.object, "list");
  });

  it("the request timeout does not cut a response that streams for longer", async () => {
    let release = () => {};
    const released = new Promise<void>((r) => (release = r));
    pool.answer = (async (params) => {
      params.onDelta?.("a");
      await released;
      params.onDelta?.("b");
      return { id: params.requestId, text: "ab", finishReason: "length", promptTokens: params.promptTokens.length, completionTokens: 2 };
    }) satisfies Answer;
    const res = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", prompt: "go", stream: true }),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n\n")) text += (await reader.read()).value ?? "";
    // A client that arrives after the stream began and stalls gets its 408: by then the
    // timeout has run out for the stream's own request too.
    assert.equal((await rawExchange(port, slowBody)).status, 408);
    release();
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
    assert.ok(text.endsWith("data: [DONE]\n\n"), text);
    assert.match(text, /"text":"b"/);
  });

  it("a stream's answer says how long the connection stays open idle, once, and closes when the client asked", async () => {
    pool.answer = (async (params) => {
      params.onDelta?.("a");
      return { id: params.requestId, text: "a", finishReason: "length", promptTokens: params.promptTokens.length, completionTokens: 1 };
    }) satisfies Answer;
    const body = JSON.stringify({ model: "tiny", prompt: "go", stream: true });
    const request = (connection: string) =>
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: ${connection}\r\n\r\n${body}`;
    const headerLines = (text: string, name: string) =>
      text
        .slice(0, text.indexOf("\r\n\r\n"))
        .split("\r\n")
        .map((l) => l.toLowerCase())
        .filter((l) => l.startsWith(`${name}:`));
    // Kept alive: the Keep-Alive hint tells a client (undici, say) when the server will close
    // an idle connection, so it does not send its next request onto one being closed.
    const kept = await rawExchange(port, request("keep-alive"));
    assert.equal(kept.status, 200);
    assert.deepEqual(headerLines(kept.text, "connection"), ["connection: keep-alive"]);
    assert.deepEqual(headerLines(kept.text, "keep-alive"), [`keep-alive: timeout=${Math.floor(SHORT.keepAliveTimeoutMs / 1000)}`]);
    assert.ok(kept.text.endsWith("data: [DONE]\n\n\r\n0\r\n\r\n"), kept.text);
    // Asked to close: the answer says so (it said keep-alive and closed anyway before).
    const closed = await rawExchange(port, request("close"));
    assert.equal(closed.status, 200);
    assert.deepEqual(headerLines(closed.text, "connection"), ["connection: close"]);
  });

  it("a compressed body is 415 unsupported_content_encoding, not 'not valid JSON'; identity is served", async () => {
    pool.answer = (async (params) => ({ id: params.requestId, text: "a", finishReason: "length", promptTokens: params.promptTokens.length, completionTokens: 1 })) satisfies Answer;
    const body = JSON.stringify({ model: "tiny", prompt: "go", max_tokens: 1 });
    const gzipped = gzipSync(body);
    const head = (encoding: string, length: number) =>
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: ${encoding}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`;
    assertOpenAiError(await rawExchange(port, Buffer.concat([Buffer.from(head("gzip", gzipped.length)), gzipped])), 415, "unsupported_content_encoding");
    const plain = await rawExchange(port, head("identity", body.length) + body);
    assert.equal(plain.status, 200, plain.text);
  });

  it("a body announced over the limit is 413 at once, before it arrives, and nothing is written inside that answer", async () => {
    const r = await rawExchange(port, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"model":');
    assertOpenAiError(r, 413, "request_too_large");
  });

  it("told every answer above as an outcome, those no route saw included", () => {
    const seen = new Set(outcomes.map((o) => `${o.status} ${o.code}`));
    for (const expected of [
      "417 expectation_failed",
      "415 unsupported_content_encoding",
      "400 invalid_url",
      "400 malformed_request",
      "400 invalid_content_length",
      "431 headers_too_large",
      "408 request_timeout",
      "200 none",
    ])
      assert.ok(seen.has(expected), `${expected} in ${[...seen].join(", ")}`);
  });
});
