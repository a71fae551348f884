// The router's live dashboard in a real browser (Debian's Chromium driven by playwright-core):
// every node of the fleet with its state, devices, resident models, queues, predicted waits
// and attainment, updated by the router's pushes without a reload. Records are written
// straight into a throwaway redis-server, as in router.test.ts, so each change is exact.
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { createClient } from "redis";
import { type ModelRecord, type NodeRecord, NODES_SET, nodeKey } from "../src/fleet/record.ts";
import { type RunningRouter, startRouter } from "../src/fleet/router.ts";
import { chromiumLaunchOptions } from "./chromium.ts";
import { postJson, ROOT } from "./helpers.ts";
import { startRedis, type TestRedis } from "./redisServer.ts";

const model = (over: Partial<ModelRecord>): ModelRecord => ({ state: "resident", queued: 0, running: 0, waitMs: 0, loadMs: 900, requestMs: 50, ...over });

describe("router dashboard in Chromium", () => {
  let redis: TestRedis;
  let client: ReturnType<typeof createClient>;
  let router: RunningRouter;
  let browser: Browser;
  let node: http.Server;
  let nodeId: string;

  async function redisNowMs(): Promise<number> {
    const [secs, micros] = await client.time();
    return Number(secs) * 1000 + Math.floor(Number(micros) / 1000);
  }

  async function publish(records: Omit<NodeRecord, "epoch" | "heartbeatMs" | "stampMs">[], over: Partial<NodeRecord> = {}): Promise<void> {
    const stampMs = await redisNowMs();
    for (const r of records) {
      const rec: NodeRecord = { epoch: "e", heartbeatMs: 60_000, stampMs, ...r, ...over };
      await client.set(nodeKey(r.nodeId), JSON.stringify(rec), { PX: 60_000 });
      await client.sAdd(NODES_SET, r.nodeId);
    }
    await router.view.refresh();
  }

  const device = (id: string, residents: string[], freeBytes = 30e9) => ({ id, up: true, memoryBytes: 80e9, freeBytes, residents });
  const nodeA = (queued: number) => ({
    nodeId,
    url: `http://${nodeId}`,
    state: "READY" as const,
    devices: [device("d0", ["m"], 20e9), device("d1", ["n"])],
    models: { m: model({ queued, running: 2, waitMs: 340, scored: 10, met: 9 }), n: model({ scored: 4, met: 1 }) },
  });
  const nodeB = (state: "READY" | "DRAINING") => ({
    nodeId: "10.0.0.2:8080",
    url: "http://10.0.0.2:8080",
    state,
    devices: [device("d0", [])],
    models: { m: model({ state: "absent", waitMs: 1_200 }), n: model({ state: "absent", waitMs: 1_100 }) },
  });

  before(async () => {
    redis = await startRedis();
    client = createClient({ url: redis.url });
    await client.connect();
    // Node A answers every completion; B is never reached (its model is a load away).
    node = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            id: "x",
            object: "chat.completion",
            created: 0,
            model: "m",
            choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
          }),
        );
      });
    });
    await new Promise<void>((r) => node.listen(0, "127.0.0.1", r));
    nodeId = `127.0.0.1:${(node.address() as AddressInfo).port}`;
    router = await startRouter({ redisUrl: redis.url, host: "127.0.0.1", port: 0, log: () => {}, dashboardPushMs: 100 });
    browser = await chromium.launch(chromiumLaunchOptions());
  });

  after(async () => {
    await browser?.close();
    await router?.shutdown(1000);
    node?.close();
    client?.destroy();
    await redis?.stop();
  });

  it("shows every node's state, devices, residents, queues, predicted waits and attainment, live", async () => {
    await publish([nodeA(3), nodeB("READY")]);
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const external: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(router.url)) external.push(r.url());
    });
    await page.goto(`${router.url}/dashboard`);
    await page.waitForSelector("#status.live", { timeout: 15_000 });
    assert.equal(await page.locator(".node").count(), 2);

    const a = page.locator(`.node[data-node="${nodeId}"]`);
    assert.equal(await a.getAttribute("data-state"), "READY");
    const m = a.locator('tr[data-model="m"]');
    assert.equal(await m.locator('td[data-col="state"]').textContent(), "resident");
    assert.equal(await m.locator('td[data-col="queued"]').textContent(), "3");
    assert.equal(await m.locator('td[data-col="running"]').textContent(), "2");
    assert.equal(await m.locator('td[data-col="wait"]').textContent(), "340 ms");
    assert.equal(await m.locator('td[data-col="attainment"]').textContent(), "90.0%");
    // The node's attainment: 10 of 14 scored requests met their SLO.
    assert.equal(await a.locator('small span[data-col="attainment"]').textContent(), "71.4%");
    assert.equal(await a.locator('[data-device="d0"] [data-resident="m"]').count(), 1);
    assert.match((await a.locator('[data-device="d0"]').textContent())!, /free 20\.00 GB of 80\.00 GB/);
    const b = page.locator('.node[data-node="10.0.0.2:8080"]');
    assert.equal(await b.locator('tr[data-model="m"] td[data-col="state"]').textContent(), "absent");
    assert.equal(await b.locator('tr[data-model="m"] td[data-col="attainment"]').textContent(), "–");
    assert.match((await b.textContent())!, /no model resident/);

    // Pushed, not reloaded: B drains, A's queue grows, and a request routed to A is counted.
    await page.evaluate("window.sameDocument = true");
    await publish([nodeA(5), nodeB("DRAINING")]);
    const r = await postJson(`${router.url}/v1/chat/completions`, { model: "m", messages: [{ role: "user", content: "x" }] });
    assert.equal(r.status, 200);
    await page.waitForSelector('.node[data-node="10.0.0.2:8080"][data-state="DRAINING"]', { timeout: 5_000 });
    await m.locator('td[data-col="queued"]', { hasText: /^5$/ }).waitFor({ timeout: 5_000 });
    await a.locator('span[data-col="routed"]', { hasText: /^1$/ }).waitFor({ timeout: 5_000 });
    fs.mkdirSync(path.join(ROOT, "artifacts"), { recursive: true });
    await page.screenshot({ path: path.join(ROOT, "artifacts", "fleet-dashboard.png"), fullPage: true });

    // A record older than 2.5 of its node's heartbeats: STALE, as the router judges it.
    await publish([nodeA(5)], { heartbeatMs: 100, stampMs: (await redisNowMs()) - 1_000 });
    await page.waitForSelector(`.node[data-node="${nodeId}"][data-state="STALE"]`, { timeout: 5_000 });
    assert.equal(await page.evaluate("window.sameDocument"), true, "updated in place");
    assert.deepEqual(errors, [], "no script errors");
    assert.deepEqual(external, [], "no request leaves the router (no CDN)");
  });
});
