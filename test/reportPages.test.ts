/**
 * The report pages as a new user first meets them, in Chromium: `pitcher simulate` on the
 * embedded 28-model market says what was run (policy, accelerator, workload, SLOs, seed),
 * keeps its timeline legend short, names each bar's model on hover, and its chart labels do
 * not overlap. The bench page carries the same header. Screenshots go to artifacts/.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { chromium } from "playwright-core";
import { formatPlanTable, formatSimulateLine, runSimulate } from "../src/cli/plan.ts";
import { describeSlo } from "../src/cli/reportSetup.ts";
import { benchReportHtml } from "../src/views/benchReportHtml.ts";
import { formatMs } from "../src/views/reportHeader.ts";
import { chromiumLaunchOptions } from "./chromium.ts";
import { ROOT } from "./helpers.ts";

const launch = () => chromium.launch(chromiumLaunchOptions());

describe("report pages", () => {
  it("numbers and SLOs read as people write them", () => {
    assert.deepEqual([0.4321, 3.04, 12.6, 288.4, 1819, 10_000].map(formatMs), ["0.4 ms", "3.0 ms", "13 ms", "288 ms", "1.8 s", "10 s"]);
    const slo = (m: string) => (m === "big" ? { ttftMs: 30_000, tbtMs: 200 } : { ttftMs: 10_000, tbtMs: 100 });
    assert.equal(describeSlo(["a", "b"], slo), "TTFT 10 s, TBT 100 ms for all 2 models");
    assert.equal(describeSlo(["a", "big"], slo), "TTFT 10 s, TBT 100 ms for a; TTFT 30 s, TBT 200 ms for big");
    const table = formatPlanTable({
      accelerator: "H20",
      target: 0.99,
      requests: 3,
      models: 2,
      policies: [],
      setup: [
        ["accelerator", "H20"],
        ["seed", "4"],
      ],
    });
    assert.match(table, /^accelerator: H20\nseed: 4\n2 models, 3 requests/);
  });

  it("simulate on the 28-model market: header, short legend, models on hover, ticks apart", async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-rep-")), "rep");
    const r = runSimulate({ accelerator: "H20", devices: 12, policy: "token", duration: 10, out, timelineSeconds: 10 });
    const rep = JSON.parse(r.json);
    assert.match(formatSimulateLine(rep), /^token on 12 × H20: attainment \d\.\d{3}, on-schedule score \d\.\d{3}, goodput \d+\.\d{2}\/s, utilisation \d+\.\d%, switches \d+$/);
    fs.mkdirSync(path.join(ROOT, "artifacts"), { recursive: true });
    const browser = await launch();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`file://${out}.html`);
      await page.waitForSelector("svg.pitcher-timeline");
      const setup = Object.fromEntries(await page.locator("#setup dt").evaluateAll((dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling?.textContent ?? ""]))) as Record<
        string,
        string
      >;
      assert.equal(setup.policy, "token");
      assert.equal(setup.devices, "12");
      assert.equal(setup.accelerator, "H20");
      assert.equal(setup.seed, "1");
      assert.equal(setup["SLO targets"], "TTFT 10 s, TBT 100 ms for all 28 models");
      assert.match(setup.workload!, /^8 req\/s for 10 s, Poisson arrivals, Zipf popularity \(s 1\.2\) over 28 models/);

      // Summary numbers: no long decimals.
      const cells = await page.locator("#summary td").allTextContents();
      for (const c of cells) assert.doesNotMatch(c, /\d\.\d{4,}/, `rounded: ${c}`);

      const legend = await page.locator("#legend .legend-entry").allTextContents();
      assert.ok(legend.length >= 2 && legend.length <= 10, `a short legend: ${legend.join(" | ")}`);
      assert.ok(
        legend.some((l) => /^qwen2\.5-7b ×8$/.test(l)),
        "instances of one base model share an entry",
      );

      // Each bar names its model in its title (the browser's hover tooltip).
      const titled = await page
        .locator("svg.pitcher-timeline rect[data-kind=decode]")
        .evaluateAll((els) => els.map((e) => [e.getAttribute("data-model"), e.querySelector("title")?.textContent ?? ""]));
      assert.ok(titled.length > 0);
      for (const [model, title] of titled) assert.ok(model && title.includes(model), `${title} names ${model}`);

      // Chart.js draws to canvas: measure its laid-out x tick labels and check none overlap.
      const overlaps = await page.evaluate(() => {
        const found: string[] = [];
        for (const id of ["sweep", "lat"]) {
          // Runs in the page (the test's tsconfig has no DOM types).
          const g = globalThis as any;
          const chart = g.Chart.getChart(g.document.getElementById(id));
          const x = chart.scales.x;
          if (!x.options.ticks.autoSkip || !x.options.ticks.maxTicksLimit) found.push(`${id}: autoSkip/maxTicksLimit off`);
          const ctx = chart.ctx;
          const boxes = x
            .getLabelItems()
            .filter((it: any) => String(it.label) !== "")
            .map((it: any) => {
              ctx.font = it.font.string;
              const w = ctx.measureText(String(it.label)).width;
              const cx = it.options.translation[0];
              return { label: String(it.label), left: cx - w / 2, right: cx + w / 2, rotation: it.options.rotation };
            })
            .sort((a: any, b: any) => a.left - b.left);
          for (const b of boxes) if (b.rotation !== 0) found.push(`${id}: ${b.label} rotated`);
          for (let i = 1; i < boxes.length; i++) if (boxes[i].left < boxes[i - 1].right) found.push(`${id}: ${boxes[i - 1].label} / ${boxes[i].label}`);
          if (boxes.length < 2) found.push(`${id}: fewer than two labels`);
        }
        return found;
      });
      assert.deepEqual(overlaps, []);
      await page.screenshot({ path: path.join(ROOT, "artifacts", "simulate-report-28-models.png"), fullPage: true });
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });

  it("bench: the same header above the charts", async () => {
    const report = { overall: { requests: 1, attainment: 1, onScheduleScore: 1, goodput: 1, ttftP50Ms: 5, ttftP99Ms: 5, tbtP50Ms: 2, tbtP99Ms: 2, gapsOverTbt: 0 } };
    const html = benchReportHtml({
      url: "http://127.0.0.1:8080",
      workload: "w.yaml",
      setup: [
        ["target", "http://127.0.0.1:8080"],
        ["SLO targets", "TTFT 10 s, TBT 100 ms for all 2 models"],
        ["seed", "7"],
      ],
      rates: [
        {
          rate: 2,
          overall: report.overall as never,
          perModel: {},
          errors: {},
          ttftCdf: [
            [5, 50],
            [9, 100],
          ],
          tbtCdf: [[2, 100]],
        },
      ],
    });
    const browser = await launch();
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.setContent(html);
      assert.deepEqual(await page.locator("#setup dt").allTextContents(), ["target", "SLO targets", "seed"]);
      assert.equal(await page.locator("#setup dd").nth(1).textContent(), "TTFT 10 s, TBT 100 ms for all 2 models");
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
});
