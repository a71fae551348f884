// Errors that take a real server: admission control refusing work, draining with requests
// running, device workers dying, corrupt KV state, clients hanging up. Bad input and the
// error wire format are tested in-process in src/api/app.test.ts.
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, it } from "node:test";
import type { CommandRecord, CommandStart } from "../src/runtime/Pool.ts";
import { postJson, standInPaths, startPreemptionServer, startTestServer, waitFor } from "./helpers.ts";

function assertOpenAiError(res: { status: number; json: any }, status: number, code: string): void {
  assert.equal(res.status, status, JSON.stringify(res.json));
  assert.equal(typeof res.json.error.message, "string");
  assert.equal(typeof res.json.error.type, "string");
  assert.ok("param" in res.json.error);
  assert.equal(res.json.error.code, code);
}

describe("overload", () => {
  it("answers 429 with Retry-After when a request cannot meet its TTFT target", async () => {
    const paths = standInPaths();
    const server = await startTestServer({
      devices: { count: 1 },
      // Without the late-wait cap: on a busy machine it would end every admitted request
      // waiting for the model's load (tested below).
      scheduler: { admissionTtftFactor: 1, lateWaitCapFactor: false },
      models: [{ id: "slow", path: paths["llama-58m-q8-a"], slo: { ttftMs: 200, tbtMs: 100 } }],
    });
    try {
      const results = await Promise.all(
        Array.from({ length: 30 }, () => postJson(`${server.url}/v1/completions`, { model: "slow", prompt: "go", max_tokens: 64, temperature: 0 })),
      );
      const rejected = results.filter((r) => r.status === 429);
      const served = results.filter((r) => r.status === 200);
      assert.ok(rejected.length > 0, "some requests were refused");
      assert.ok(served.length > 0, "the rest were served");
      for (const r of rejected) {
        assertOpenAiError(r, 429, "rate_limit_exceeded");
        assert.ok(Number(r.headers.get("retry-after")) >= 1);
      }
      for (const r of served) assert.equal(r.json.usage.completion_tokens, 64);
    } finally {
      await server.shutdown();
    }
  });
});

describe("the late-wait cap", () => {
  it("answers 503 slo_wait_exceeded with Retry-After, streamed or not, for requests that waited past it without starting", async () => {
    const paths = standInPaths();
    const server = await startTestServer({
      devices: { count: 1 },
      scheduler: { admissionTtftFactor: 0, lateWaitCapFactor: 0.5 },
      models: [{ id: "slow", path: paths["llama-58m-q8-a"], slo: { ttftMs: 200, tbtMs: 100 } }],
    });
    try {
      // 30 requests of 64 tokens for one model with 4 slots: most wait far past 300 ms.
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => postJson(`${server.url}/v1/completions`, { model: "slow", prompt: "go", max_tokens: 64, temperature: 0, stream: i % 2 === 1 })),
      );
      const ended = results.filter((r) => r.status === 503);
      assert.ok(ended.length > 0, "some requests were ended");
      for (const r of ended) {
        assertOpenAiError(r, 503, "slo_wait_exceeded");
        assert.match(r.json.error.message, /past its TTFT target of 200 ms/);
        assert.ok(Number(r.headers.get("retry-after")) >= 1);
      }
      for (const r of results.filter((x) => x.status !== 503)) assert.equal(r.status, 200);
      assert.equal(server.pool.activeRequests, 0);
      assert.equal(server.pool.scheduler.activeRequestCount, 0);
    } finally {
      await server.shutdown();
    }
  });
});

describe("shutdown", () => {
  it("drains: running requests finish, new ones get 503", async () => {
    const paths = standInPaths();
    const server = await startTestServer({ devices: { count: 1 }, models: [{ id: "m", path: paths["llama-58m-q8-a"] }] });
    const running = server.client.completions.create({ model: "m", prompt: "long one", max_tokens: 200, temperature: 0 });
    await waitFor(() => server.pool.activeRequests === 1);
    const done = server.shutdown();
    const late = await postJson(`${server.url}/v1/completions`, { model: "m", prompt: "late", max_tokens: 2 });
    assertOpenAiError(late, 503, "shutting_down");
    const r = await running;
    assert.equal(r.usage!.completion_tokens, 200);
    await done;
  });
});

describe("failures inside the pool", () => {
  let server: Awaited<ReturnType<typeof startPreemptionServer>>;
  let commands: CommandRecord[];
  before(async () => {
    server = await startPreemptionServer();
    commands = server.commands;
  });
  after(async () => server.shutdown());

  it("a crashed device worker fails only its in-flight requests, clearly, and comes back", async () => {
    commands.length = 0;
    const doomed = postJson(`${server.url}/v1/completions`, { model: "long", prompt: "crash me", max_tokens: 400, temperature: 0 });
    await waitFor(() => commands.some((c) => c.kind === "decode"));
    const dev = server.devices.get("dev0")!;
    const oldPid = dev.pid;
    dev.kill("SIGABRT"); // what a native assert in llama.cpp does
    const r = await doomed;
    assertOpenAiError(r, 500, "device_failed");
    assert.match(r.json.error.message, /dev0 failed/);
    await waitFor(() => dev.pid !== undefined && dev.pid !== oldPid);
    const after = await server.client.completions.create({ model: "long", prompt: "back again", max_tokens: 5, temperature: 0 });
    assert.equal(after.usage!.completion_tokens, 5);
  });

  it("a request parked in the host tier survives a crash of its device and returns the text it returns alone", async () => {
    const prompt = "Parked while the device dies";
    const alone = await server.client.completions.create({ model: "long", prompt, max_tokens: 400, temperature: 0 });
    commands.length = 0;
    const dev = server.devices.get("dev0")!;
    let killed = false;
    let parkedOut = false;
    const onStart = (c: CommandStart) => {
      if (c.kind === "swapOut" && c.modelId === "long") parkedOut = true;
      // The long request's KV has gone to the host tier (commands run one at a time) and
      // the urgent model is loading.
      if (!killed && parkedOut && c.kind === "load" && c.modelId === "urgent") {
        killed = true;
        dev.kill("SIGABRT");
      }
    };
    server.pool.on("commandStart", onStart);
    try {
      const parked = server.client.completions.create({ model: "long", prompt, max_tokens: 400, temperature: 0 });
      await waitFor(() => commands.some((c) => c.kind === "decode" && c.modelId === "long"));
      const urgent = await server.client.completions.create({ model: "urgent", prompt: "now", max_tokens: 4, temperature: 0 });
      assert.equal(urgent.usage!.completion_tokens, 4);
      const r = await parked;
      assert.ok(killed, "the device died while the long request was parked");
      assert.equal(r.usage!.completion_tokens, 400);
      assert.equal(r.choices[0]!.text, alone.choices[0]!.text);
    } finally {
      server.pool.off("commandStart", onStart);
    }
  });

  it("a corrupt KV state file fails only its request with a clear error; the pool goes on", async () => {
    commands.length = 0;
    let corrupted = "";
    const onCommand = (c: CommandRecord) => {
      if (c.kind === "swapOut" && c.modelId === "long" && !corrupted) {
        // Truncate the parked KV before it is restored (llama.cpp would abort on it).
        const file = server.hostKv.paths(c.requestIds[0]!).state;
        fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
        corrupted = c.requestIds[0]!;
      }
    };
    server.pool.on("command", onCommand);
    try {
      const victim = postJson(`${server.url}/v1/completions`, { model: "long", prompt: "park me", max_tokens: 400, temperature: 0 });
      await waitFor(() => commands.some((c) => c.kind === "decode" && c.modelId === "long"));
      const urgent = await server.client.completions.create({ model: "urgent", prompt: "now", max_tokens: 4, temperature: 0 });
      assert.equal(urgent.usage!.completion_tokens, 4);
      const r = await victim;
      assert.ok(corrupted, "the request was parked in the host tier");
      assertOpenAiError(r, 500, "kv_restore_failed");
      assert.match(r.json.error.message, /corrupt/);
      const again = await server.client.completions.create({ model: "long", prompt: "fine", max_tokens: 5, temperature: 0 });
      assert.equal(again.usage!.completion_tokens, 5);
    } finally {
      server.pool.off("command", onCommand);
    }
  });

  it("a client that disconnects cancels its request and frees its KV at once", async () => {
    const ac = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "long", prompt: "bye", max_tokens: 900, temperature: 0, stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    assert.equal(server.pool.activeRequests, 1);
    ac.abort();
    await waitFor(() => server.pool.activeRequests === 0, 5000);
    assert.equal(server.pool.scheduler.activeRequestCount, 0);
    await waitFor(() => server.pool.scheduler.snapshot().devices[0]!.kvBytes === 0, 5000);
  });
});
