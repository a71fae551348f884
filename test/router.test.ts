// The router against scripted nodes: tiny HTTP servers whose records are written straight
// into a throwaway redis-server, so each answer a node can give is tested on its own.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { createClient } from "redis";
import { type NodeRecord, NODES_SET, nodeKey } from "../src/fleet/record.ts";
import { type RunningRouter, startRouter } from "../src/fleet/router.ts";
import { postJson } from "./helpers.ts";
import { startRedis, type TestRedis } from "./redisServer.ts";

type Script = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

interface FakeNode {
  id: string;
  url: string;
  hits: number;
  headers: http.IncomingHttpHeaders[];
  script: Script;
  server: http.Server;
}

const CHUNK = (text: string) =>
  `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 0, model: "m", choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })}\n\n`;

async function fakeNode(script: Script): Promise<FakeNode> {
  const node = { hits: 0, headers: [], script } as unknown as FakeNode;
  node.server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      node.hits++;
      node.headers.push(req.headers);
      node.script(req, res, body);
    });
  });
  await new Promise<void>((r) => node.server.listen(0, "127.0.0.1", r));
  const port = (node.server.address() as AddressInfo).port;
  node.id = `127.0.0.1:${port}`;
  node.url = `http://${node.id}`;
  return node;
}

describe("router against scripted nodes", () => {
  let redis: TestRedis;
  let client: ReturnType<typeof createClient>;
  let router: RunningRouter;
  let openai: OpenAI;
  const nodes: FakeNode[] = [];

  /** Publish a record for each node, stamped now on Redis's clock; `waitMs` orders them. */
  async function publish(entries: { node: FakeNode; waitMs: number }[]): Promise<void> {
    const [secs, micros] = await client.time();
    const stampMs = Number(secs) * 1000 + Math.floor(Number(micros) / 1000);
    await client.del(NODES_SET);
    for (const { node, waitMs } of entries) {
      const rec: NodeRecord = {
        nodeId: node.id,
        url: node.url,
        epoch: "e",
        state: "READY",
        stampMs,
        heartbeatMs: 60_000,
        devices: [],
        models: { m: { state: "resident", queued: 0, running: 0, waitMs, loadMs: 100, requestMs: 1 } },
      };
      await client.set(nodeKey(node.id), JSON.stringify(rec), { PX: 60_000 });
      await client.sAdd(NODES_SET, node.id);
    }
    await router.view.refresh();
  }

  before(async () => {
    redis = await startRedis();
    client = createClient({ url: redis.url });
    await client.connect();
    for (let i = 0; i < 3; i++) nodes.push(await fakeNode(() => {}));
    router = await startRouter({ redisUrl: redis.url, host: "127.0.0.1", port: 0, log: () => {}, excludeMs: 1 });
    openai = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: "sk-test", maxRetries: 0 });
  });

  after(async () => {
    await router.shutdown(1000);
    for (const n of nodes) n.server.close();
    client.destroy();
    await redis.stop();
  });

  const reset = (scripts: Script[]) =>
    nodes.forEach((n, i) => {
      n.hits = 0;
      n.headers = [];
      n.script = scripts[i]!;
    });
  const json =
    (status: number, body: unknown, headers: Record<string, string> = {}): Script =>
    (_q, res) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };
  const ok = json(200, {
    id: "x",
    object: "chat.completion",
    created: 0,
    model: "m",
    choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
  });
  const err = (status: number, code: string, headers: Record<string, string> = {}) => json(status, { error: { message: code, type: "server_error", param: null, code } }, headers);

  it("sends to the cheapest node, passing Authorization through", async () => {
    reset([ok, ok, ok]);
    await publish([
      { node: nodes[0]!, waitMs: 50 },
      { node: nodes[1]!, waitMs: 10 },
      { node: nodes[2]!, waitMs: 90 },
    ]);
    const r = await openai.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    assert.equal(r.choices[0]!.message.content, "hi");
    assert.deepEqual(
      nodes.map((n) => n.hits),
      [0, 1, 0],
    );
    assert.equal(nodes[1]!.headers[0]!.authorization, "Bearer sk-test");
    assert.equal(nodes[1]!.headers[0]!["x-pitcher-route"], "view");
  });

  it("re-dispatches silently on device_failed, a draining node and a refused connection", async () => {
    const closed = await fakeNode(() => {});
    await new Promise<void>((r) => closed.server.close(() => r()));
    reset([err(500, "device_failed"), err(503, "node_draining", { "retry-after": "1" }), ok]);
    await publish([
      { node: closed, waitMs: 0 },
      { node: nodes[0]!, waitMs: 1 },
      { node: nodes[1]!, waitMs: 2 },
      { node: nodes[2]!, waitMs: 3 },
    ]);
    const r = await openai.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    assert.equal(r.choices[0]!.message.content, "hi");
    assert.deepEqual(
      nodes.map((n) => n.hits),
      [1, 1, 1],
    );
  });

  it("every node 429: 429 with the smallest Retry-After", async () => {
    reset([
      err(429, "rate_limit_exceeded", { "retry-after": "9" }),
      err(429, "rate_limit_exceeded", { "retry-after": "4" }),
      err(429, "rate_limit_exceeded", { "retry-after": "6" }),
    ]);
    await publish(nodes.map((node, i) => ({ node, waitMs: i })));
    const r = await postJson(`${router.url}/v1/chat/completions`, { model: "m", messages: [{ role: "user", content: "x" }] });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get("retry-after"), "4");
    assert.equal(r.json.error.code, "rate_limit_exceeded");
    assert.deepEqual(
      nodes.map((n) => n.hits),
      [1, 1, 1],
      "each node tried once",
    );
  });

  it("a key's own limits (fleet-wide) pass through from the first node, headers and all; a node's overload moves on", async () => {
    const keyError = (status: number, code: string, type: string, headers: Record<string, string>) =>
      json(status, { error: { message: code, type, param: null, code } }, { "x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "0", ...headers });
    await publish(nodes.map((node, i) => ({ node, waitMs: i })));
    for (const [status, code, type] of [
      [429, "rate_limit_exceeded", "requests"],
      [429, "rate_limit_exceeded", "tokens"],
      [429, "insufficient_quota", "insufficient_quota"],
      [503, "limits_unavailable", "server_error"],
    ] as const) {
      reset([keyError(status, code, type, { "retry-after": "7" }), ok, ok]);
      const r = await postJson(`${router.url}/v1/chat/completions`, { model: "m", messages: [{ role: "user", content: "x" }] });
      assert.equal(r.status, status);
      assert.equal(r.json.error.code, code);
      assert.equal(r.headers.get("retry-after"), "7");
      assert.equal(r.headers.get("x-ratelimit-limit-requests"), "5");
      assert.deepEqual(
        nodes.map((n) => n.hits),
        [1, 0, 0],
        `${code} (${type}) is not sent to another node`,
      );
    }
    // The node's own overload (type rate_limit_error) still moves on to the next node.
    reset([keyError(429, "rate_limit_exceeded", "rate_limit_error", { "retry-after": "2" }), ok, ok]);
    const r = await openai.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    assert.equal(r.choices[0]!.message.content, "hi");
    assert.deepEqual(
      nodes.map((n) => n.hits),
      [1, 1, 0],
    );
  });

  it("a node failing after the first byte: the stream ends with node_failed, nothing re-sent", async () => {
    const cut: Script = (_q, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(CHUNK("one"));
      setTimeout(() => res.destroy(), 50);
    };
    reset([cut, ok, ok]);
    await publish(nodes.map((node, i) => ({ node, waitMs: i })));
    const stream = await openai.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }], stream: true });
    const got: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of stream) got.push(c.choices[0]?.delta.content ?? "");
      })(),
      (e: unknown) => e instanceof OpenAI.APIError && e.code === "node_failed",
    );
    assert.deepEqual(got, ["one"]);
    assert.deepEqual(
      nodes.map((n) => n.hits),
      [1, 0, 0],
    );
  });

  it("no node for the model: 404 model_not_found; no node at all: 503 no_node_available with Retry-After", async () => {
    await publish(nodes.map((node, i) => ({ node, waitMs: i })));
    const unknown = await postJson(`${router.url}/v1/chat/completions`, { model: "nope", messages: [] });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.code, "model_not_found");
    await publish([]);
    const none = await postJson(`${router.url}/v1/chat/completions`, { model: "m", messages: [] });
    assert.equal(none.status, 503);
    assert.equal(none.json.error.code, "no_node_available");
    assert.equal(none.headers.get("retry-after"), "1");
    const notFound = await fetch(`${router.url}/nope`);
    assert.equal(notFound.status, 404);
    assert.equal(((await notFound.json()) as { error: { code: string } }).error.code, "not_found");
  });
});
