// A fleet node's API changes, over a scripted Serving: the drain hand-back and the fence.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NodeDrainingError, NodeUnavailableError, PitcherError } from "../core/errors.ts";
import type { Generation, GenerationResult, Health, Serving, ServingRequest } from "../runtime/Serving.ts";
import { FleetServing, ROUTE_HEADER, refuseWhenFenced } from "./nodeServing.ts";

/** Requests that never end on their own; an abort cancels one, as the pool does. */
class ScriptedServing implements Serving {
  draining = false;
  private n = 0;
  readonly finish = new Map<string, (r: GenerationResult) => void>();

  async generate(request: ServingRequest): Promise<Generation> {
    const id = `cmpl-${this.n++}`;
    const result = new Promise<GenerationResult>((resolve, reject) => {
      this.finish.set(id, resolve);
      request.signal?.addEventListener("abort", () => reject(new PitcherError("Request cancelled", "cancelled", 499, "invalid_request_error")));
    });
    result.catch(() => {});
    async function* pieces(): AsyncGenerator<string> {
      // The text comes whole at the end, as a non-streamed answer's does.
      yield (await result).text;
    }
    async function* detailed() {
      yield { text: (await result).text };
    }
    return { id, promptTokens: 1, pieces: pieces(), detailed: detailed(), result };
  }
  embed(): Promise<never> {
    return Promise.reject(new Error("not scripted"));
  }
  models() {
    return [];
  }
  model() {
    return undefined;
  }
  health(): Health {
    return { status: "ok", activeRequests: 0, devices: [] };
  }
}

const request: ServingRequest = { modelId: "m", input: { kind: "completion", prompt: "x" }, sampling: { temperature: 0 }, stop: [] };
const done: GenerationResult = { id: "", text: "ok", finishReason: "stop", promptTokens: 1, completionTokens: 1 };

describe("FleetServing", () => {
  it("a drain hands back the queued requests with node_draining and lets running ones finish", async () => {
    const inner = new ScriptedServing();
    const queued = new Set<string>();
    const serving = new FleetServing(inner, (id) => queued.has(id));
    const running = await serving.generate(request);
    const waiting = await serving.generate(request);
    queued.add(waiting.id);
    assert.equal(serving.drain(), 1);
    await assert.rejects(waiting.result, NodeDrainingError);
    await assert.rejects(
      (async () => {
        for await (const _ of waiting.pieces);
      })(),
      NodeDrainingError,
      "a stream not started answers with the same error",
    );
    inner.finish.get(running.id)!(done);
    assert.equal((await running.result).text, "ok");
    await assert.rejects(serving.generate(request), NodeDrainingError, "new requests are refused");
    assert.equal(serving.health().status, "draining");
  });

  it("never reports the app's own draining: routers get node_draining with Retry-After instead", async () => {
    const inner = new ScriptedServing();
    inner.draining = true;
    const serving = new FleetServing(inner, () => false);
    assert.equal(serving.draining, false);
    await assert.rejects(serving.generate(request), (e: unknown) => e instanceof NodeDrainingError && e.retryAfterSeconds === 1);
  });
});

describe("refuseWhenFenced", () => {
  it("refuses only requests routed on a live view, and only while fenced", () => {
    let fenced = false;
    const refuse = refuseWhenFenced(() => fenced);
    const view = { method: "POST", headers: { [ROUTE_HEADER]: "view" } };
    assert.equal(refuse(view), undefined);
    fenced = true;
    assert.ok(refuse(view) instanceof NodeUnavailableError);
    assert.equal(refuse({ method: "POST", headers: { [ROUTE_HEADER]: "fallback" } }), undefined, "a router that lost Redis too is served");
    assert.equal(refuse({ method: "POST", headers: {} }), undefined, "a direct client is served");
    assert.equal(refuse({ method: "GET", headers: { [ROUTE_HEADER]: "view" } }), undefined);
  });
});
