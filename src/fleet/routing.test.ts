// The routing function in virtual time: records are stamped on a made-up Redis clock.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ModelRecord, NodeRecord } from "./record.ts";
import { type Attempt, nextStep, rankNodes, type RoutingInput } from "./routing.ts";

const HEARTBEAT_MS = 500;

function model(over: Partial<ModelRecord> = {}): ModelRecord {
  return { state: "resident", queued: 0, running: 0, waitMs: 0, loadMs: 800, requestMs: 100, ...over };
}

function node(nodeId: string, stampMs: number, models: Record<string, ModelRecord>, over: Partial<NodeRecord> = {}): NodeRecord {
  return { nodeId, url: `http://${nodeId}`, epoch: "e1", state: "READY", stampMs, heartbeatMs: HEARTBEAT_MS, devices: [], models, ...over };
}

function input(records: NodeRecord[], over: Partial<RoutingInput> = {}): RoutingInput {
  return { records, modelId: "m", asOfMs: 10_000, nowMs: 10_000, inFlight: [], excludedUntil: new Map(), ...over };
}

const ids = (i: RoutingInput) => rankNodes(i).map((c) => c.nodeId);

describe("rankNodes", () => {
  it("routes on fresh records only: older than 2.5 heartbeats is skipped", () => {
    const records = [node("a", 10_000 - 1_250, { m: model() }), node("b", 10_000 - 1_251, { m: model() })];
    assert.deepEqual(ids(input(records)), ["a"]);
    // Judged at the view's own time (Redis unreachable): both were fresh then.
    assert.deepEqual(ids(input(records, { asOfMs: 9_000 })), ["a", "b"]);
  });

  it("skips draining nodes and nodes that do not serve the model", () => {
    const records = [node("a", 10_000, { m: model() }, { state: "DRAINING" }), node("b", 10_000, { other: model() }), node("c", 10_000, { m: model() })];
    assert.deepEqual(ids(input(records)), ["c"]);
  });

  it("prefers a node holding the model unless it is busier than a load elsewhere", () => {
    const holder = (waitMs: number) => node("holder", 10_000, { m: model({ state: "resident", waitMs }) });
    // The other node would load first: its wait is the load (800 ms).
    const loader = node("loader", 10_000, { m: model({ state: "absent", waitMs: 800 }) });
    assert.deepEqual(ids(input([loader, holder(300)])), ["holder", "loader"]);
    assert.deepEqual(ids(input([loader, holder(800)])), ["holder", "loader"], "a tie goes to residency");
    assert.deepEqual(ids(input([loader, holder(5_000)])), ["loader", "holder"], "residency is not occupancy");
  });

  it("counts what this router sent since the record, not what the record already shows", () => {
    const records = [node("a", 10_000, { m: model({ waitMs: 100, requestMs: 200 }) }), node("b", 10_000, { m: model({ waitMs: 300, requestMs: 200 }) })];
    const sentBefore = [{ nodeId: "a", modelId: "m", sentAtMs: 9_900 }];
    assert.deepEqual(ids(input(records, { inFlight: sentBefore })), ["a", "b"], "already in a's wait");
    const sentAfter = [{ nodeId: "a", modelId: "m", sentAtMs: 10_000 }];
    const ranked = rankNodes(input(records, { inFlight: sentAfter }));
    assert.deepEqual(
      ranked.map((c) => [c.nodeId, c.costMs]),
      [
        ["b", 300],
        ["a", 300],
      ],
      "a's 100 ms wait plus one unrecorded request of 200 ms ties with b, which has none of ours in flight",
    );
  });

  it("prices unrecorded sends of a running model as joins to its batch, not as solo requests", () => {
    // a holds m with a request running: each of our sends joins that batch (joinMs), so a
    // burst of three stays there rather than paying a load on b.
    const holder = node("a", 10_000, { m: model({ running: 1, waitMs: 100, requestMs: 1_000, joinMs: 20 }) });
    const loader = node("b", 10_000, { m: model({ state: "absent", waitMs: 800 }) });
    const burst = [0, 1, 2].map((i) => ({ nodeId: "a", modelId: "m", sentAtMs: 10_000 + i }));
    assert.deepEqual(
      rankNodes(input([loader, holder], { inFlight: burst })).map((c) => [c.nodeId, c.costMs]),
      [
        ["a", 160],
        ["b", 800],
      ],
    );
    // Nothing of m on the node: the first send opens a batch (requestMs), the next ones join it.
    const idle = node("a", 10_000, { m: model({ waitMs: 100, requestMs: 1_000, joinMs: 20 }) });
    assert.equal(rankNodes(input([idle], { inFlight: burst }))[0]!.costMs, 100 + 1_000 + 20 + 20);
    // A record without joinMs (an older node): every send at requestMs.
    const old = node("a", 10_000, { m: model({ running: 1, waitMs: 100, requestMs: 300 }) });
    assert.equal(rankNodes(input([old], { inFlight: burst }))[0]!.costMs, 100 + 900);
  });

  it("prices a load that must evict a resident model as a second load", () => {
    const GB = 1e9;
    const device = (freeBytes: number) => ({ id: "d0", up: true, memoryBytes: 80 * GB, freeBytes, residents: [] });
    const holder = node("a", 10_000, { m: model({ waitMs: 1_200 }) });
    const full = node("b", 10_000, { m: model({ state: "absent", waitMs: 800, loadMs: 800, weightBytes: 15 * GB }) }, { devices: [device(5 * GB)] });
    assert.deepEqual(
      rankNodes(input([full, holder])).map((c) => [c.nodeId, c.costMs]),
      [
        ["a", 1_200],
        ["b", 1_600],
      ],
      "b has no room: its load would evict a model",
    );
    const roomy = node("b", 10_000, { m: model({ state: "absent", waitMs: 800, loadMs: 800, weightBytes: 15 * GB }) }, { devices: [device(20 * GB)] });
    assert.deepEqual(ids(input([roomy, holder])), ["b", "a"], "b has room: only the load itself");
  });

  it("skips an excluded node until its exclusion ends", () => {
    const records = [node("a", 10_000, { m: model() }), node("b", 10_000, { m: model({ waitMs: 50 }) })];
    const excludedUntil = new Map([["a", 12_000]]);
    assert.deepEqual(ids(input(records, { excludedUntil })), ["b"]);
    assert.deepEqual(ids(input(records, { excludedUntil, nowMs: 12_000, asOfMs: 10_500 })), ["a", "b"]);
  });

  it("is deterministic: equal costs order by residency, then our in-flight count, then id", () => {
    const records = [node("c", 10_000, { m: model() }), node("b", 10_000, { m: model() }), node("a", 10_000, { m: model() })];
    const inFlight = [{ nodeId: "a", modelId: "m", sentAtMs: 9_000 }];
    assert.deepEqual(ids(input(records, { inFlight })), ["b", "c", "a"]);
  });
});

describe("nextStep", () => {
  const ranked = rankNodes(input([node("a", 10_000, { m: model({ waitMs: 1 }) }), node("b", 10_000, { m: model({ waitMs: 2 }) }), node("c", 10_000, { m: model({ waitMs: 3 }) })]));
  const limits = { maxAttempts: 3, deadlineMs: 20_000, nowMs: 10_000 };

  it("sends to the best node, and after a 429 to the next candidate once", () => {
    assert.deepEqual(nextStep(ranked, [], limits), { kind: "send", candidate: ranked[0] });
    const after429: Attempt[] = [{ nodeId: "a", kind: "rate_limited", retryAfterS: 7 }];
    assert.equal((nextStep(ranked, after429, limits) as { candidate: { nodeId: string } }).candidate.nodeId, "b");
  });

  it("every node 429: 429 with the smallest Retry-After", () => {
    const all: Attempt[] = [
      { nodeId: "a", kind: "rate_limited", retryAfterS: 7 },
      { nodeId: "b", kind: "rate_limited", retryAfterS: 3 },
      { nodeId: "c", kind: "rate_limited", retryAfterS: 5 },
    ];
    assert.deepEqual(nextStep(ranked, all, limits), { kind: "rate_limited", retryAfterS: 3 });
  });

  it("stops after maxAttempts or past the TTFT budget; without a 429 that is 503", () => {
    const failed: Attempt[] = [{ nodeId: "a", kind: "failed" }];
    assert.deepEqual(nextStep(ranked, failed, { ...limits, maxAttempts: 1 }), { kind: "unavailable", retryAfterS: 1 });
    assert.deepEqual(nextStep(ranked, failed, { ...limits, nowMs: 20_000 }), { kind: "unavailable", retryAfterS: 1 });
    assert.equal(nextStep(ranked, failed, limits).kind, "send");
  });

  it("with no candidate at all: 503", () => {
    assert.deepEqual(nextStep([], [], limits), { kind: "unavailable", retryAfterS: 1 });
  });
});
