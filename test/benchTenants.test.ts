// `pitcher bench` against a server with API keys: `--api-key` (what the official `openai`
// client's apiKey sends), and a workload whose tenants each send their own traffic with their
// own key, scored per tenant in one run.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import YAML from "yaml";
import { runBench } from "../src/cli/bench.ts";
import { generateWorkload, workloadSchema } from "../src/workload/workload.ts";
import { runCli, STORIES, startTestServer } from "./helpers.ts";

const KEYS = { a: "sk-bench-a-0123456789", b: "sk-bench-b-0123456789" };

describe("pitcher bench with API keys", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let dir: string;
  const plain = { seed: 3, durationSeconds: 2, ratePerSecond: 3, inputTokens: 6, outputTokens: 3 };
  const tenants = {
    ...plain,
    ratePerSecond: 4,
    tenants: [
      { name: "a", key: KEYS.a },
      { name: "b", key: KEYS.b, share: 3 },
    ],
  };
  before(async () => {
    server = await startTestServer({
      devices: { count: 1 },
      models: [{ id: "stories", path: STORIES, slo: { ttftMs: 10_000, tbtMs: 2000 } }],
      auth: {
        keys: [
          { name: "a", key: KEYS.a },
          { name: "b", key: KEYS.b },
        ],
      },
    });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-tenants-"));
    fs.writeFileSync(path.join(dir, "plain.yaml"), YAML.stringify(plain));
    fs.writeFileSync(path.join(dir, "tenants.yaml"), YAML.stringify(tenants));
  });
  after(async () => server.shutdown());

  it("sends each tenant's requests with its own key and scores them per tenant", async () => {
    const expected = generateWorkload(workloadSchema.parse(tenants), ["stories"]);
    const count = (name: string) => expected.filter((r) => r.tenant?.id === name).length;
    const [row] = await runBench({ url: server.url, workload: path.join(dir, "tenants.yaml"), ttftMs: 1, tbtMs: 1, progress: false });
    assert.deepEqual(row!.errors, {});
    assert.equal(row!.overall.completed, expected.length);
    assert.deepEqual(Object.keys(row!.perTenant!).sort(), ["a", "b"]);
    assert.equal(row!.perTenant!.a!.requests, count("a"));
    assert.equal(row!.perTenant!.b!.requests, count("b"));
    assert.ok(count("b") > count("a"), "b has three times a's share");
  });

  it("asks for --api-key when the server wants one; with it the run succeeds", async () => {
    // The model list needs a key too: without one, bench stops before sending any load.
    await assert.rejects(runBench({ url: server.url, workload: path.join(dir, "plain.yaml"), ttftMs: 1, tbtMs: 1, progress: false }), /401.*--api-key/);
    const run = await runCli(["bench", "--url", server.url, "--workload", path.join(dir, "plain.yaml"), "--api-key", KEYS.b, "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const json = JSON.parse(run.stdout) as { rates: { overall: { requests: number; completed: number }; errors: Record<string, number> }[] };
    assert.deepEqual(json.rates[0]!.errors, {});
    assert.equal(json.rates[0]!.overall.completed, json.rates[0]!.overall.requests);
  });
});
