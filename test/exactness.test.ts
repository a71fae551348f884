// A request preempted mid-generation (KV parked in the host tier, its model evicted and
// reloaded, KV restored) returns exactly the tokens it returns when served alone.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { CommandRecord } from "../src/runtime/Pool.ts";

/** What a preempted run may ask, llama.cpp's extensions (which the openai client passes through untyped) included. */
type Sampling = { temperature: number; seed?: number } & Record<string, unknown>;
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

  async function preemptedRun(sampling: Sampling): Promise<string> {
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

  it("penalized, biased, seeded sampling: preempted output equals the output served alone", async () => {
    // Penalties read the output so far: it goes with each decode, so the resumed request is
    // penalized as if it had never moved.
    const sampling = {
      temperature: 0.9,
      seed: 42,
      presence_penalty: 0.7,
      frequency_penalty: 0.5,
      repeat_penalty: 1.2,
      top_k: 30,
      min_p: 0.01,
      logit_bias: { "300": 3, "301": -100 },
    };
    const alone = await server.client.completions.create({ model: "long", prompt, max_tokens: 400, ...sampling });
    const pooled = await preemptedRun(sampling);
    assert.equal(pooled, alone.choices[0]!.text);
    const unpenalized = await server.client.completions.create({ model: "long", prompt, max_tokens: 400, temperature: 0.9, seed: 42 });
    assert.notEqual(pooled, unpenalized.choices[0]!.text, "the options mattered");
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
