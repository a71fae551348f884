// Hostile clients against the real server and the real CLI: refusals counted in /metrics and
// logged (without the prompt), max_tokens the context cannot hold, and SIGTERM with slow
// clients connected and with requests still running at the drain deadline.
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { rawClient, rawExchange } from "../src/api/testing/rawHttp.ts";
import { CACHE_DIR, postJson, series, spawnServe, standInPaths, startTestServer, waitFor, writeConfig } from "./helpers.ts";

function assertOpenAiError(res: { status: number | null; json: any }, status: number, code: string): void {
  assert.equal(res.status, status, JSON.stringify(res.json));
  assert.equal(typeof res.json.error.message, "string");
  assert.equal(typeof res.json.error.type, "string");
  assert.ok("param" in res.json.error);
  assert.equal(res.json.error.code, code);
}

const portOf = (url: string) => Number(new URL(url).port);
const slowBody = 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":';

describe("refusals in /metrics and the request log", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  const logLines: Record<string, any>[] = [];
  let logText = "";
  before(async () => {
    const log = new PassThrough();
    let buf = "";
    log.on("data", (d) => {
      logText += d;
      buf += d;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        logLines.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    server = await startTestServer(
      { devices: { count: 1 }, models: [{ id: "m", path: standInPaths()["llama-5m-q8"] }], server: { headersTimeoutMs: 300, requestTimeoutMs: 600 } },
      { requestLog: log },
    );
  });
  after(() => server.shutdown());

  it("counts answers by status and code: a 400, two kinds of 404, a 408 no route saw", async () => {
    assertOpenAiError(await postJson(`${server.url}/v1/chat/completions`, { model: "m" }), 400, "invalid_request");
    assertOpenAiError(await postJson(`${server.url}/v1/completions`, { model: "nope", prompt: "x" }), 404, "model_not_found");
    const unknown = await fetch(`${server.url}/v1/nothing`);
    assert.equal(unknown.status, 404);
    assertOpenAiError(await rawExchange(portOf(server.url), slowBody), 408, "request_timeout");
    const text = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(series(text, "pitcher_http_responses_total", { status: "400", code: "invalid_request" }), 1);
    assert.equal(series(text, "pitcher_http_responses_total", { status: "404", code: "model_not_found" }), 1);
    assert.equal(series(text, "pitcher_http_responses_total", { status: "404", code: "not_found" }), 1);
    assert.equal(series(text, "pitcher_http_responses_total", { status: "408", code: "request_timeout" }), 1);
  });

  it("logs one line for a refused request: status, code, route, model; never the prompt or the key", async () => {
    const r = await postJson(`${server.url}/v1/completions`, { model: "m", prompt: "my secret prompt", best_of: 3 }, { authorization: "Bearer sk-secret-key" });
    assertOpenAiError(r, 400, "unsupported_option");
    await waitFor(() => logLines.some((l) => l.code === "unsupported_option"));
    const refused = logLines.filter((l) => l.code === "unsupported_option");
    assert.equal(refused.length, 1);
    const { msg, status, code, route, method, model } = refused[0]!;
    assert.deepEqual(
      { msg, status, code, route, method, model },
      { msg: "refused", status: 400, code: "unsupported_option", route: "/v1/completions", method: "POST", model: "m" },
    );
    assert.ok(
      logLines.some((l) => l.msg === "refused" && l.status === 408 && l.code === "request_timeout"),
      "refusals before any route are logged too",
    );
    assert.doesNotMatch(logText, /secret/);
  });

  it("max_tokens beyond what the context holds after the prompt is 400, naming both numbers", async () => {
    const r = await postJson(`${server.url}/v1/completions`, { model: "m", prompt: "Once upon a time", max_tokens: 5000 });
    assertOpenAiError(r, 400, "context_length_exceeded");
    assert.equal(r.json.error.param, "max_tokens");
    assert.match(r.json.error.message, /max_tokens is 5000\b/);
    const room = Number(/room for (\d+) output tokens/.exec(r.json.error.message)?.[1]);
    assert.ok(room > 1000 && room < 1024, r.json.error.message);
    const fits = await postJson(`${server.url}/v1/completions`, { model: "m", prompt: "Once upon a time", max_tokens: 3, temperature: 0 });
    assert.equal(fits.status, 200);
  });
});

/** `pitcher serve` with this config text, as a user runs it. */
function serve(config: string) {
  return spawnServe(["--config", writeConfig(config), "--port", "0"]);
}

describe("pitcher serve on SIGTERM", () => {
  it("with slow clients and an idle keep-alive client connected: lets them go and exits 0 long before their timeouts", async () => {
    const s = serve(
      `cacheDir: ${CACHE_DIR}\nscheduler: { calibrate: false }\ndevices: { count: 1 }\n` +
        `server: { headersTimeoutMs: 600000, requestTimeoutMs: 600000, drainTimeoutMs: 5000 }\n` +
        `models:\n  - id: m\n    path: ${standInPaths()["llama-5m-q8"]}\n`,
    );
    const port = portOf(await s.url);
    // `Expect: 100-continue` makes the server say when it has the headers: then the client stalls.
    const slowUpload = rawClient(port, slowBody.replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n"));
    await new Promise<void>((resolve) => slowUpload.socket.once("data", () => resolve()));
    const slowHeaders = rawClient(port, "GET /v1/models HTTP/1.1\r\nHost: x\r\n");
    await new Promise<void>((resolve) => slowHeaders.socket.once("connect", () => resolve()));
    // And one answered and idle on its keep-alive connection (open 75 s by default).
    const idle = rawClient(port, "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n");
    await new Promise<void>((resolve) => idle.socket.once("data", () => resolve()));
    const startedMs = Date.now();
    s.child.kill("SIGTERM");
    assert.equal(await s.exited, 0, s.output().stderr);
    assert.ok(Date.now() - startedMs < 60_000, "well before the 600 s timeouts and the 75 s keep-alive");
    await slowUpload.closed;
    await slowHeaders.closed;
    assert.equal((await idle.closed).status, 200);
  });

  it("past the drain deadline: the running request gets 503 shutting_down, the running stream an error event, and the process exits 0", async () => {
    const s = serve(
      `cacheDir: ${CACHE_DIR}\nscheduler: { calibrate: false, admissionTtftFactor: 0 }\ndevices: { count: 1 }\n` +
        `server: { drainTimeoutMs: 300 }\nmodels:\n  - id: m\n    path: ${standInPaths()["llama-58m-q8-a"]}\n`,
    );
    const url = await s.url;
    const plain = postJson(`${url}/v1/completions`, { model: "m", prompt: "keep going", max_tokens: 900, temperature: 0 });
    const res = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", prompt: "and going", max_tokens: 900, temperature: 0, stream: true }),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n\n")) text += (await reader.read()).value ?? "";
    // Both are in the pool (the plain one may still wait behind the stream's prefill).
    const inPool = async () => {
      const t = await (await fetch(`${url}/metrics`)).text();
      return (series(t, "pitcher_running_requests", { model: "m" }) ?? 0) + (series(t, "pitcher_queue_depth", { model: "m" }) ?? 0);
    };
    for (const startMs = Date.now(); (await inPool()) < 2; await new Promise((r) => setTimeout(r, 20)))
      if (Date.now() - startMs > 60_000) throw new Error("the two requests never were in the pool together");
    s.child.kill("SIGTERM");
    assertOpenAiError(await plain, 503, "shutting_down");
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
    const events = text.split("\n\n").filter((e) => e.length > 0);
    assert.equal(JSON.parse(events.at(-1)!.slice("data: ".length)).error.code, "shutting_down");
    assert.ok(!text.includes("[DONE]"));
    assert.equal(await s.exited, 0, s.output().stderr);
    assert.match(s.output().stderr, /drain deadline of 300 ms passed: ended 2 running request/);
  });
});
