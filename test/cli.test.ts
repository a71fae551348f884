// `pitcher serve` as a user runs it: a real process, a config file, signals.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CACHE_DIR, postJson, spawnServe, standInPaths, writeConfig } from "./helpers.ts";

describe("pitcher serve", () => {
  it("drains on SIGTERM: the running request completes, then the process exits 0", async () => {
    const paths = standInPaths();
    const cfg = writeConfig(`cacheDir: ${CACHE_DIR}\nscheduler: { calibrate: false }\ndevices: { count: 1 }\nmodels:\n  - id: m\n    path: ${paths["llama-58m-q8-a"]}\n`);
    const s = spawnServe(["--config", cfg, "--port", "0"]);
    const url = await s.url;
    const running = postJson(`${url}/v1/completions`, { model: "m", prompt: "keep going", max_tokens: 300, temperature: 0 });
    await new Promise((r) => setTimeout(r, 300));
    s.child.kill("SIGTERM");
    const r = await running;
    assert.equal(r.status, 200);
    assert.equal(r.json.usage.completion_tokens, 300);
    assert.equal(await s.exited, 0);
    assert.match(s.output().stderr, /SIGTERM: draining 1 running request/);
  });

  it("refuses a config with a bad field, naming it", async () => {
    const cfg = writeConfig("devices:\n  threadsPerDevice: lots\n");
    const s = spawnServe(["--config", cfg]);
    assert.equal(await s.exited, 1);
    assert.match(s.output().stderr, /devices\.threadsPerDevice: Expected number/);
  });

  it("refuses an unknown scheduling policy, naming the known ones", async () => {
    const cfg = writeConfig("scheduler:\n  policy: fastest\n");
    const s = spawnServe(["--config", cfg]);
    assert.equal(await s.exited, 1);
    assert.match(s.output().stderr, /scheduler\.policy: unknown policy 'fastest' \(known: token, request, serverless\)/);
  });

  it("refuses a model file that does not exist", async () => {
    const cfg = writeConfig("models:\n  - id: ghost\n    path: ./nowhere.gguf\n");
    const s = spawnServe(["--config", cfg]);
    assert.equal(await s.exited, 1);
    assert.match(s.output().stderr, /nowhere\.gguf does not exist/);
  });
});
