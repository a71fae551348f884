import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { generateWorkload, workloadSchema, type WorkloadRequest } from "../workload/workload.ts";
import { findAccelerator } from "./accelerators.ts";
import { simulateFleet } from "./fleetSimulation.ts";
import { findModelPreset, type SimModelSpec } from "./modelPresets.ts";
import { analyticCosts } from "./SimCosts.ts";
import { simulate } from "./Simulation.ts";

const H800 = findAccelerator("H800")!;
const slo = () => ({ ttftMs: 10_000, tbtMs: 100 });
const models: SimModelSpec[] = [1, 2, 3, 4].map((i) => ({ ...findModelPreset("qwen2.5-7b")!, id: `qwen-${i}` }));
const costs = analyticCosts(H800, models);

function workload(over: Record<string, unknown> = {}): WorkloadRequest[] {
  return generateWorkload(
    workloadSchema.parse({
      seed: 5,
      durationSeconds: 40,
      ratePerSecond: 3,
      popularity: { kind: "zipf", s: 1.2 },
      inputTokens: { mean: 300, cv: 1, max: 2000 },
      outputTokens: { mean: 80, cv: 1, max: 400 },
      ...over,
    }),
    models.map((m) => m.id),
  );
}

describe("simulate --nodes (fleet simulation)", () => {
  it("with one node gives the plain simulation's report", () => {
    const requests = workload();
    const plain = simulate({ costs, slo, devices: 2, policy: "token", recordTraces: false }, requests);
    const fleet = simulateFleet({ costs, slo, nodes: 1, devicesPerNode: 2, policy: "token" }, requests);
    assert.deepEqual(fleet.report, plain.report);
    assert.equal(fleet.switches, plain.switches);
    assert.equal(fleet.simulatedMs, plain.simulatedMs);
    assert.equal(fleet.utilization, plain.utilization);
    assert.deepEqual(fleet.routed, [requests.length]);
  });

  it("routes a model's requests to the node where it is resident", () => {
    // One model, a request every 2 s (each done before the next): the first loads it on some
    // node; the records then show it resident there and absent (a load away) elsewhere.
    const requests: WorkloadRequest[] = Array.from({ length: 10 }, (_, i) => ({ index: i, modelId: "qwen-1", arrivalMs: 100 + 2000 * i, inputTokens: 200, outputTokens: 50 }));
    const r = simulateFleet({ costs, slo, nodes: 2, devicesPerNode: 1, policy: "token" }, requests);
    assert.deepEqual([...r.routed].sort(), [0, 10]);
    assert.equal(r.switches, 1);
    assert.equal(r.report.attainment, 1);
  });

  it("counts what it sent since a record as joins to the running batch: a burst stays where the model is", () => {
    // The third arrives 100 ms after the second, before any record shows it: the router prices
    // it at the record plus one request joining the second's batch (`joinMs`), less than a load.
    const requests: WorkloadRequest[] = [0, 2000, 2100].map((t, i) => ({ index: i, modelId: "qwen-1", arrivalMs: t + 100, inputTokens: 200, outputTokens: 200 }));
    const r = simulateFleet({ costs, slo, nodes: 2, devicesPerNode: 1, policy: "token" }, requests);
    assert.deepEqual([...r.routed].sort(), [0, 3]);
    assert.equal(r.switches, 1);
  });

  it("with a node down serves every request on the others", () => {
    const requests = workload();
    const r = simulateFleet({ costs, slo, nodes: 2, devicesPerNode: 2, policy: "token", downNodes: [0] }, requests);
    assert.deepEqual(r.routed, [0, requests.length]);
    assert.equal(r.unrouted, 0);
    const both = simulateFleet({ costs, slo, nodes: 2, devicesPerNode: 2, policy: "token" }, requests);
    assert.ok(
      both.routed.every((n) => n > 0),
      `both nodes take work: ${both.routed}`,
    );
  });

  it("repeats exactly", () => {
    const requests = workload();
    const a = simulateFleet({ costs, slo, nodes: 3, devicesPerNode: 1, policy: "token" }, requests);
    const b = simulateFleet({ costs, slo, nodes: 3, devicesPerNode: 1, policy: "token" }, requests);
    assert.deepEqual(a.report, b.report);
    assert.deepEqual(a.routed, b.routed);
  });
});

describe("pitcher simulate --nodes / plan --node-devices", () => {
  it("writes the report with the nodes beside one pool and one node down", async () => {
    const { runSimulateNodes, runPlanNodes } = await import("../cli/simulateNodes.ts");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-nodes-"));
    try {
      const r = runSimulateNodes({ accelerator: "H20", duration: 5, rate: 2, policy: "token", devices: 2, nodes: 2, out: path.join(dir, "rep"), timelineSeconds: 5 });
      const page = JSON.parse(fs.readFileSync(path.join(dir, "rep.json"), "utf8"));
      assert.equal(page.nodes.nodes, 2);
      assert.equal(page.nodes.devicesPerNode, 2);
      assert.equal(page.nodes.fleet.routed.length, 2);
      assert.equal(page.nodes.oneNodeDown.routed[0], 0);
      assert.equal(page.nodes.fleet.routed.reduce((a: number, b: number) => a + b, 0) + page.nodes.fleet.unrouted, page.requests);
      assert.match(r.line, /2 nodes × 2 × H20: attainment [\d.]+.*\n {2}one pool of 4 devices: .*\n {2}one node down: /);
      const plan = runPlanNodes({ accelerator: "H20", duration: 5, rate: 2, policy: "token", devices: 2, maxNodes: 3, target: 0.5 });
      assert.ok(plan.minNodes === null || plan.at.fleet.attainment >= 0.5);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
