// A request preempted mid-generation (KV parked in the host tier, its model evicted and
// reloaded, KV restored) returns exactly the tokens it returns when served alone.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { CommandRecord } from "../src/runtime/Pool.ts";
import { startPreemptionServer, waitFor } from "./helpers.ts";

describe("exactness under pooling", () => {
  let server: Awaited<ReturnType<typeof startPreemptionServer>>;
  let commands: CommandRecord[];
  before(async () => {
    server = await startPreemptionServer();
    commands = server.commands;
  });
  after(async () => server.shutdown());

  const prompt = "The pool serves many models at once, and every token";

  async function preemptedRun(sampling: { temperature: number; seed?: number }): Promise<string> {
    commands.length = 0;
    const long = server.client.completions.create({ model: "long", prompt, max_tokens: 400, ...sampling });
    // Once the long request decodes, urgent requests for the other model arrive.
    await waitFor(() => commands.some((c) => c.kind === "decode" && c.modelId === "long"));
    const urgent = await Promise.all([1, 2].map((i) => server.client.completions.create({ model: "urgent", prompt: `Urgent ${i}`, max_tokens: 8, temperature: 0 })));
    for (const u of urgent) assert.equal(u.usage!.completion_tokens, 8);
    const r = await long;
    assert.equal(r.usage!.completion_tokens, 400);
    const longId = commands.find((c) => c.kind === "prefill" && c.modelId === "long")!.requestIds[0]!;
    const kinds = commands.map((c) => `${c.kind}:${c.modelId ?? ""}:${c.requestIds.includes(longId) ? "L" : ""}`);
    const out = kinds.indexOf("swapOut:long:L");
    const loadUrgent = kinds.indexOf("load:urgent:");
    const reload = kinds.indexOf("load:long:", loadUrgent);
    const back = kinds.indexOf("swapIn:long:L", reload);
    assert.ok(out >= 0 && loadUrgent > out && reload > loadUrgent && back > reload, `preempt, evict, reload, restore: ${kinds.join(" ")}`);
    assert.ok(kinds.slice(back).includes("decode:long:L"), "the long request decoded again after the restore");
    return r.choices[0]!.text;
  }

  it("greedy: preempted output equals the output served alone", async () => {
    const alone = await server.client.completions.create({ model: "long", prompt, max_tokens: 400, temperature: 0 });
    const pooled = await preemptedRun({ temperature: 0 });
    assert.equal(pooled, alone.choices[0]!.text);
  });

  it("seeded sampling: preempted output equals the output served alone", async () => {
    const alone = await server.client.completions.create({ model: "long", prompt, max_tokens: 400, temperature: 0.9, seed: 42 });
    const pooled = await preemptedRun({ temperature: 0.9, seed: 42 });
    assert.equal(pooled, alone.choices[0]!.text);
  });

  it("constrained (json_schema) sampling: preempted output equals the output served alone", async () => {
    // 200 booleans take more than 400 tokens: the request is still running when it is preempted.
    const flags = { type: "array", items: { type: "boolean" }, minItems: 200, maxItems: 200 };
    const constrained = { temperature: 0.9, seed: 42, response_format: { type: "json_schema", json_schema: { name: "flags", schema: flags } } };
    const alone = await server.client.completions.create({ model: "long", prompt, max_tokens: 400, ...constrained } as never);
    const pooled = await preemptedRun(constrained);
    assert.equal(pooled, (alone as { choices: { text: string }[] }).choices[0]!.text);
    assert.match(pooled, /^\[\s*(true|false)\s*,/);
  });
});
