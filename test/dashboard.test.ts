/**
 * Pages in a real browser, Debian's Chromium driven by playwright-core. The live dashboard:
 * it loads GET /dashboard, requests go to two models, and both show up on the device
 * timeline (pushed by the server, no reload). The simulator's report draws the same
 * timeline view. Under load, busy devices read busy (never "idle" while requests run on
 * them), TTFT/TBT percentiles show, and the first pushed message stays small. Screenshots
 * are saved to artifacts/.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { findAccelerator } from "../src/sim/accelerators.ts";
import { findModelPreset } from "../src/sim/modelPresets.ts";
import { buildReport } from "../src/sim/report.ts";
import { analyticCosts } from "../src/sim/SimCosts.ts";
import { simulate } from "../src/sim/Simulation.ts";
import { simulationReportHtml } from "../src/views/simulationReportHtml.ts";
import { generateWorkload, workloadSchema } from "../src/workload/workload.ts";
import { chromiumLaunchOptions } from "./chromium.ts";
import { ROOT, STAND_IN_IDS, startTestServer } from "./helpers.ts";

describe("dashboard in Chromium", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let browser: Browser;
  before(async () => {
    server = await startTestServer({ devices: { count: 2, memory: "80MB" } }, { dashboardPushMs: 200 });
    browser = await chromium.launch(chromiumLaunchOptions());
  });
  after(async () => {
    await browser?.close();
    await server?.shutdown();
  });

  it("shows requests to two models on the timeline, with residency, memory and SLO per model", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const external: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(server.url)) external.push(r.url());
    });
    await page.goto(`${server.url}/dashboard`);
    await page.waitForSelector("#status.live", { timeout: 15_000 });
    // Nothing has run yet: every model listed, no segment on the timeline.
    assert.equal(await page.locator("#models tbody tr").count(), STAND_IN_IDS.length);
    assert.equal(await page.locator("svg.pitcher-timeline rect[data-kind]").count(), 0);

    const [a, b] = [STAND_IN_IDS[0]!, STAND_IN_IDS[4]!];
    await Promise.all([a, b, a, b].map((model, i) => server.client.completions.create({ model, prompt: `Request ${i}`, max_tokens: 24, temperature: 0 })));
    for (const m of [a, b]) {
      await page.waitForSelector(`svg.pitcher-timeline rect[data-kind="decode"][data-model="${m}"]`, { timeout: 15_000 });
      await page.waitForSelector(`svg.pitcher-timeline rect[data-kind="load"][data-model="${m}"]`, { timeout: 15_000 });
    }
    // Live SLO per model: both requests of each model were scored.
    for (const m of [a, b]) {
      const row = page.locator(`#models tr[data-model="${m}"]`);
      await assert.doesNotReject(row.locator("td").nth(5).filter({ hasText: /^2$/ }).waitFor({ timeout: 5_000 }));
      assert.match((await row.locator("td").nth(3).textContent())!, /%$/);
    }
    // Residency and the memory split per device.
    assert.ok((await page.locator("[data-resident]").count()) >= 1, "a resident model is shown");
    assert.match((await page.locator(".device").first().textContent())!, /weights [\d.]+ MB · KV [\d.]+ MB · free/);

    fs.mkdirSync(path.join(ROOT, "artifacts"), { recursive: true });
    await page.screenshot({ path: path.join(ROOT, "artifacts", "dashboard.png"), fullPage: true });
    assert.deepEqual(errors, [], "no script errors");
    assert.deepEqual(external, [], "no request leaves the server (no CDN)");
  });
});

describe("dashboard in Chromium under load", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let browser: Browser;
  before(async () => {
    server = await startTestServer({ devices: { count: 2, memory: "80MB" } }, { dashboardPushMs: 100 });
    browser = await chromium.launch(chromiumLaunchOptions());
  });
  after(async () => {
    await browser?.close();
    await server?.shutdown();
  });

  it("shows busy devices as busy, TTFT/TBT percentiles and the request rate, with a small first message", async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    // Every device card ever drawn, as [activity, bound requests]: a render between two
    // checks would otherwise go unseen.
    // (Page code as text: the tests are typed without the DOM's types.)
    await page.addInitScript(`
      window.seenDevices = [];
      new MutationObserver((records) => {
        for (const r of records)
          for (const n of r.addedNodes)
            if (n instanceof HTMLElement && n.dataset.activity !== undefined) window.seenDevices.push([n.dataset.activity, Number(n.dataset.requests)]);
      }).observe(document, { childList: true, subtree: true });
    `);
    await page.goto(`${server.url}/dashboard`);
    await page.waitForSelector("#status.live", { timeout: 15_000 });
    assert.match((await page.locator(".device").first().textContent())!, /of 80\.0 MB/, "80MB in the config reads 80.0 MB");

    const [a, b] = [STAND_IN_IDS[0]!, STAND_IN_IDS[4]!];
    const streams = [a, a, a, a, b, b, b].map(async (model, i) => {
      const stream = await server.client.completions.create({ model, prompt: `Story ${i}:`, max_tokens: 160, temperature: 0, stream: true });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
      return text;
    });
    // A device holding requests, drawn while they run.
    await page.waitForSelector('.device[data-activity]:not([data-activity="idle"]):not([data-requests="0"])', { timeout: 15_000 });
    fs.mkdirSync(path.join(ROOT, "artifacts"), { recursive: true });
    await page.screenshot({ path: path.join(ROOT, "artifacts", "dashboard-busy.png"), fullPage: true });
    await Promise.all(streams);

    for (const m of [a, b]) {
      const row = page.locator(`#models tr[data-model="${m}"]`);
      await row
        .locator('td[data-col="ttft"]')
        .filter({ hasText: /^[\d.]+ \/ [\d.]+ ms$/ })
        .waitFor({ timeout: 5_000 });
      assert.match((await row.locator('td[data-col="tbt"]').textContent())!, /^[\d.]+ \/ [\d.]+ ms$/);
      assert.equal(await row.locator('td[data-col="errors"]').textContent(), "0");
    }
    const seen = (await page.evaluate("window.seenDevices")) as [string, number][];
    assert.ok(
      seen.some(([activity, n]) => activity !== "idle" && n > 0),
      "a device was drawn busy with its requests",
    );
    assert.deepEqual(
      seen.filter(([activity, n]) => activity === "idle" && n > 0),
      [],
      "no device holding requests was drawn idle",
    );
    await page.screenshot({ path: path.join(ROOT, "artifacts", "dashboard-load.png"), fullPage: true });

    // A new page's first message, after the load: small enough to paint at once.
    const res = await fetch(`${server.url}/dashboard/events`);
    const reader = res.body!.getReader();
    let raw = "";
    while (!raw.includes("\n\n")) raw += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    const first = raw.slice(0, raw.indexOf("\n\n"));
    assert.ok(Buffer.byteLength(first) < 50_000, `first message ${Buffer.byteLength(first)} bytes`);
    assert.ok(JSON.parse(first.slice(first.indexOf("data: ") + 6)).segments.length > 0, "it carries the timeline");
    assert.deepEqual(errors, [], "no script errors");
  });
});

describe("simulation report in Chromium", () => {
  it("draws the simulated devices with the dashboard's timeline view", async () => {
    const models = ["qwen2.5-7b", "llama-2-13b", "qwen3-30b-a3b"].map((p, i) => ({ ...findModelPreset(p)!, id: `m${i}` }));
    const requests = generateWorkload(
      workloadSchema.parse({ seed: 3, durationSeconds: 30, ratePerSecond: 2, popularity: { kind: "uniform" }, inputTokens: 300, outputTokens: 60 }),
      models.map((m) => m.id),
    );
    const r = simulate(
      { costs: analyticCosts(findAccelerator("H800")!, models), slo: () => ({ ttftMs: 10_000, tbtMs: 100 }), devices: 2, policy: "token", recordTimeline: true },
      requests,
    );
    const report = buildReport({ accelerator: "H800", policy: "token", devices: 2 }, r, [{ devices: 2, attainment: r.report.attainment, goodput: r.report.goodput }], 30_000);
    fs.mkdirSync(path.join(ROOT, "artifacts"), { recursive: true });
    const file = path.join(ROOT, "artifacts", "simulation-report.html");
    fs.writeFileSync(file, simulationReportHtml(report));

    const browser = await chromium.launch(chromiumLaunchOptions());
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`file://${file}`);
      await page.waitForSelector("svg.pitcher-timeline");
      const rects = page.locator("svg.pitcher-timeline rect[data-kind]");
      assert.equal(await rects.count(), report.timeline.length, "one bar per simulated command");
      const kinds = new Set(await rects.evaluateAll((els) => els.map((e) => e.getAttribute("data-kind"))));
      for (const k of ["load", "prefill", "decode"]) assert.ok(kinds.has(k), `a ${k} bar is drawn`);
      assert.equal(await page.locator("svg.pitcher-timeline text", { hasText: /^device [01]$/ }).count(), 2);
      await page.screenshot({ path: path.join(ROOT, "artifacts", "simulation-report.png"), fullPage: true });
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
});
