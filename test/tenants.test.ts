// API keys from the configuration through the real server and the official `openai` client:
// 401, a forbidden model answered as unknown, /v1/models filtered, 429 with OpenAI's rate
// limit headers for requests and tokens per minute, insufficient_quota at the budget, and the
// tenant's name (never its key) in the request log and /metrics.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { PassThrough } from "node:stream";
import OpenAI from "openai";
import { STORIES, series, startTestServer } from "./helpers.ts";

const KEYS = { alice: "sk-alice-0123456789", bob: "sk-bob-0123456789", carol: "sk-carol-0123456789", dave: "sk-dave-0123456789" };
const PROMPT = "Once upon a time"; // 5 tokens for stories260K

describe("tenants: API keys, limits and budgets", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let logText = "";
  const client = (key: string) => new OpenAI({ baseURL: `${server.url}/v1`, apiKey: key, maxRetries: 0 });

  before(async () => {
    const log = new PassThrough();
    log.on("data", (d) => (logText += d));
    server = await startTestServer(
      {
        devices: { count: 1 },
        models: [
          { id: "stories-a", path: STORIES },
          { id: "stories-b", path: STORIES },
        ],
        auth: {
          keys: [
            { name: "alice", key: KEYS.alice, rpm: 3 },
            { name: "bob", keySha256: createHash("sha256").update(KEYS.bob).digest("hex"), models: ["stories-a"], tpm: 100 },
            { name: "carol", key: KEYS.carol, budget: { tokens: 60, period: "day" } },
            { name: "dave", key: KEYS.dave, weight: 2 },
          ],
        },
      },
      { requestLog: log },
    );
  });
  after(async () => server.shutdown());

  it("answers 401 invalid_api_key without a key or with an unknown one; /health stays open", async () => {
    for (const key of ["", "sk-nobody-0123456789"]) {
      const e = await client(key)
        .models.list()
        .then(
          () => null,
          (x: unknown) => x,
        );
      assert.ok(e instanceof OpenAI.AuthenticationError, String(e));
      assert.equal(e.status, 401);
      assert.equal(e.code, "invalid_api_key");
    }
    // A percent-encoded path that reaches a /v1 route needs a key as well.
    assert.equal((await fetch(`${server.url}/%761/models`)).status, 401);
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  });

  it("hides a model the key may not use: filtered /v1/models, 404 as for an unknown model", async () => {
    const bob = client(KEYS.bob);
    assert.deepEqual(
      (await bob.models.list()).data.map((m) => m.id),
      ["stories-a"],
    );
    assert.deepEqual(
      (await client(KEYS.dave).models.list()).data.map((m) => m.id),
      ["stories-a", "stories-b"],
    );
    const forbidden = await bob.models.retrieve("stories-b").then(
      () => null,
      (x: unknown) => x,
    );
    assert.ok(forbidden instanceof OpenAI.NotFoundError);
    const asked = await bob.completions.create({ model: "stories-b", prompt: PROMPT, max_tokens: 4 }).then(
      () => null,
      (x: unknown) => x,
    );
    const unknown = await bob.completions.create({ model: "stories-c", prompt: PROMPT, max_tokens: 4 }).then(
      () => null,
      (x: unknown) => x,
    );
    assert.ok(asked instanceof OpenAI.NotFoundError && unknown instanceof OpenAI.NotFoundError);
    assert.equal(asked.code, "model_not_found");
    assert.equal(asked.message.replace("stories-b", "X"), unknown.message.replace("stories-c", "X"));
  });

  it("429 rate_limit_exceeded past the requests per minute, with Retry-After and x-ratelimit headers on every answer", async () => {
    const alice = client(KEYS.alice);
    const remaining: string[] = [];
    for (let i = 0; i < 2; i++) {
      const { response } = await alice.completions.create({ model: "stories-b", prompt: PROMPT, max_tokens: 4, temperature: 0 }).withResponse();
      assert.equal(response.headers.get("x-ratelimit-limit-requests"), "3");
      assert.match(response.headers.get("x-ratelimit-reset-requests")!, /^(\d+m)?\d+(\.\d+)?(ms|s)$/);
      remaining.push(response.headers.get("x-ratelimit-remaining-requests")!);
    }
    // A streamed answer carries them too.
    const { data: stream, response } = await alice.chat.completions
      .create({ model: "stories-a", messages: [{ role: "user", content: "Hi" }], max_tokens: 4, stream: true })
      .withResponse();
    for await (const _ of stream);
    remaining.push(response.headers.get("x-ratelimit-remaining-requests")!);
    assert.deepEqual(remaining, ["2", "1", "0"]);
    const e = await alice.completions.create({ model: "stories-a", prompt: PROMPT, max_tokens: 4 }).then(
      () => null,
      (x: unknown) => x,
    );
    assert.ok(e instanceof OpenAI.RateLimitError, String(e));
    assert.equal(e.code, "rate_limit_exceeded");
    assert.equal(e.type, "requests");
    assert.ok(Number(e.headers!.get("retry-after")) >= 1);
    assert.equal(e.headers!.get("x-ratelimit-remaining-requests"), "0");
    assert.equal(e.headers!.get("x-ratelimit-limit-requests"), "3");
  });

  it("429 past the tokens per minute, counting prompt + max tokens at admission", async () => {
    const bob = client(KEYS.bob);
    const { data, response } = await bob.completions.create({ model: "stories-a", prompt: PROMPT, max_tokens: 40, temperature: 0 }).withResponse();
    assert.equal(data.usage!.total_tokens, 45);
    assert.equal(response.headers.get("x-ratelimit-limit-tokens"), "100");
    assert.equal(response.headers.get("x-ratelimit-remaining-tokens"), "55");
    // 45 used, so 55 left: 5 + 60 does not fit.
    const e = await bob.completions.create({ model: "stories-a", prompt: PROMPT, max_tokens: 60 }).then(
      () => null,
      (x: unknown) => x,
    );
    assert.ok(e instanceof OpenAI.RateLimitError, String(e));
    assert.equal(e.code, "rate_limit_exceeded");
    assert.equal(e.type, "tokens");
    assert.ok(Number(e.headers!.get("retry-after")) >= 1);
    assert.equal(e.headers!.get("x-ratelimit-limit-tokens"), "100");
    assert.equal(e.headers!.get("x-ratelimit-remaining-tokens"), "55");
    // A smaller request still fits.
    await bob.completions.create({ model: "stories-a", prompt: PROMPT, max_tokens: 20, temperature: 0 });
  });

  it("429 insufficient_quota once the budget cannot hold prompt + max tokens", async () => {
    const carol = client(KEYS.carol);
    const r = await carol.completions.create({ model: "stories-a", prompt: PROMPT, max_tokens: 40, temperature: 0 });
    assert.equal(r.usage!.total_tokens, 45);
    const e = await carol.completions.create({ model: "stories-a", prompt: PROMPT, max_tokens: 20 }).then(
      () => null,
      (x: unknown) => x,
    );
    assert.ok(e instanceof OpenAI.RateLimitError, String(e));
    assert.equal(e.status, 429);
    assert.equal(e.code, "insufficient_quota");
    // 15 left: a request of 5 + 10 fits exactly.
    await carol.completions.create({ model: "stories-a", prompt: PROMPT, max_tokens: 10, temperature: 0 });
  });

  it("logs and measures the tenant's name, never its key", async () => {
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(series(metrics, "pitcher_tenant_requests_total", { tenant: "alice", outcome: "rate_limit_exceeded" }), 1);
    assert.equal(series(metrics, "pitcher_tenant_requests_total", { tenant: "carol", outcome: "insufficient_quota" }), 1);
    assert.equal(series(metrics, "pitcher_tenant_requests_total", { tenant: "carol", outcome: "length" }), 2);
    assert.equal(series(metrics, "pitcher_tenant_tokens_total", { tenant: "carol", kind: "completion" }), 50);
    assert.equal(series(metrics, "pitcher_tenant_budget_remaining_tokens", { tenant: "carol" }), 0);
    const lines = logText
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.msg === "request" && l.tenant === "carol" && l.outcome === "length"));
    assert.ok(lines.some((l) => l.msg === "refused" && l.tenant === "carol" && l.code === "insufficient_quota" && l.status === 429));
    assert.ok(lines.some((l) => l.msg === "refused" && l.tenant === "bob" && l.code === "rate_limit_exceeded"));
    assert.ok(lines.some((l) => l.msg === "refused" && l.tenant === undefined && l.code === "invalid_api_key" && l.status === 401));
    // The dashboard's first push names the keys (their names) with their requests.
    const feed = new AbortController();
    const res = await fetch(`${server.url}/dashboard/events`, { signal: feed.signal });
    const reader = res.body!.getReader();
    let event = "";
    while (!event.includes("\n\n")) event += new TextDecoder().decode((await reader.read()).value);
    feed.abort();
    const state = JSON.parse(event.slice(event.indexOf("data: ") + 6, event.indexOf("\n\n")));
    const carol = state.tenants.find((t: { name: string }) => t.name === "carol");
    assert.equal(carol.ended, 2);
    assert.equal(carol.tokens, 50);
    for (const key of Object.values(KEYS)) {
      assert.ok(!logText.includes(key));
      assert.ok(!metrics.includes(key));
    }
  });
});

describe("without auth.keys", () => {
  it("stays open, and warns at start-up when it listens beyond loopback", async () => {
    const said: string[] = [];
    const server = await startTestServer({ devices: { count: 1 }, models: [{ id: "stories", path: STORIES }], server: { host: "0.0.0.0" } }, { log: (m) => said.push(m) });
    try {
      assert.ok(
        said.some((m) => /no auth\.keys/.test(m) && m.includes("0.0.0.0")),
        said.join("\n"),
      );
      const r = await server.client.completions.create({ model: "stories", prompt: PROMPT, max_tokens: 2 });
      assert.equal(r.usage!.completion_tokens, 2);
    } finally {
      await server.shutdown();
    }
    const quiet: string[] = [];
    const local = await startTestServer({ devices: { count: 1 }, models: [{ id: "stories", path: STORIES }] }, { log: (m) => quiet.push(m) });
    await local.shutdown();
    assert.ok(!quiet.some((m) => /no auth\.keys/.test(m)));
  });
});
