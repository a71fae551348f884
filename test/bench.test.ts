// `pitcher bench` against a real server: open-loop load, every token timed, SLO-scored.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { runBench } from "../src/cli/bench.ts";
import { generateWorkload, workloadSchema } from "../src/workload/workload.ts";
import { runCli, standInPaths, startTestServer } from "./helpers.ts";

describe("pitcher bench", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let workloadFile: string;
  const workload = { seed: 4, durationSeconds: 4, ratePerSecond: 3, inputTokens: 12, outputTokens: 6 };
  before(async () => {
    const paths = standInPaths();
    server = await startTestServer({
      devices: { count: 1 },
      models: [
        { id: "a", path: paths["llama-5m-q8"], slo: { ttftMs: 5000, tbtMs: 200 } },
        { id: "b", path: paths["llama-5m-f16"] },
      ],
    });
    workloadFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bench-")), "w.yaml");
    fs.writeFileSync(workloadFile, JSON.stringify(workload));
  });
  after(async () => server.shutdown());

  it("replays the seeded workload, times every token and scores it per model with the server's SLOs", async () => {
    const expected = generateWorkload(workloadSchema.parse(workload), ["a", "b"]);
    const [row] = await runBench({ url: server.url, workload: workloadFile, ttftMs: 1, tbtMs: 1, progress: false });
    assert.equal(row!.overall.requests, expected.length);
    assert.equal(row!.overall.completed, expected.length);
    assert.deepEqual(row!.errors, {});
    // Light load on tiny models: every request meets the published SLOs (not the 1 ms fallback).
    assert.equal(row!.overall.attainment, 1);
    assert.deepEqual(Object.keys(row!.perModel).sort(), [...new Set(expected.map((r) => r.modelId))].sort());
    assert.ok(row!.overall.tbtP99Ms > 0 && row!.overall.ttftP50Ms > 0);
  });

  it("sweeps rates from the command line, prints JSON and writes the HTML report", async () => {
    const prefix = path.join(path.dirname(workloadFile), "report");
    const run = await runCli(["bench", "--url", server.url, "--workload", workloadFile, "--rates", "1,2", "--json", "--report", prefix]);
    assert.equal(run.code, 0, run.stderr);
    const json = JSON.parse(run.stdout) as { rates: { rate: number; overall: { requests: number; attainment: number } }[] };
    assert.deepEqual(
      json.rates.map((r) => r.rate),
      [1, 2],
    );
    assert.ok(json.rates[1]!.overall.requests > json.rates[0]!.overall.requests);
    const saved = JSON.parse(fs.readFileSync(`${prefix}.json`, "utf8"));
    assert.deepEqual(
      saved.rates.map((r: { rate: number }) => r.rate),
      [1, 2],
    );
    assert.ok(
      saved.rates.every((r: { ttftCdf: unknown[]; tbtCdf: unknown[] }) => r.ttftCdf.length === 50 && r.tbtCdf.length === 50),
      "latency distributions",
    );
    const html = fs.readFileSync(`${prefix}.html`, "utf8");
    assert.match(html, /Chart\.js v4/, "Chart.js inlined");
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=["']?https?:/, "no CDN");
    for (const id of ["attainment", "goodput", "ttft", "tbt"]) assert.match(html, new RegExp(`<canvas id="${id}">`));
  });
});
