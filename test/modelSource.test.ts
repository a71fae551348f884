// A configured remote model (`hf:`) whose host cannot be reached fails start-up in bounded
// time, naming the model and the reason, instead of a spinner that never ends. Nothing here
// leaves the machine: the Hugging Face endpoint is a loopback port (HF_ENDPOINT).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { parseConfig } from "../src/config/loadConfig.ts";
import { ConfigError } from "../src/core/errors.ts";
import { resolveModels } from "../src/engine/resolveModels.ts";
import { ROOT, standInPaths } from "./helpers.ts";

const REF = "hf:pitcher-test/tiny-GGUF/tiny-q8_0.gguf";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-source-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function config(id: string, cacheDir: string) {
  return parseConfig({ cacheDir, models: [{ id, path: REF }] }, "test");
}

/** A loopback port nothing listens on: connections to it are refused. */
async function refusedEndpoint(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return `http://127.0.0.1:${port}/`;
}

/** A loopback host that accepts connections and never answers. */
async function silentHost(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe("remote model sources", () => {
  it("pitcher serve with an hf: model and an unreachable host exits 1, naming the model and the reason", { timeout: 60_000 }, async () => {
    const cacheDir = path.join(tmp, "cli");
    const file = path.join(tmp, "pitcher.yaml");
    fs.writeFileSync(file, `cacheDir: ${cacheDir}\nmodels:\n  - id: offline-model\n    path: ${REF}\n`);
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve", "--config", file, "--port", "0"], {
      cwd: ROOT,
      env: { ...process.env, HF_ENDPOINT: await refusedEndpoint(), MODEL_ENDPOINT: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    assert.equal(code, 1);
    assert.match(stderr, /models\.0 \(offline-model\): cannot fetch hf:pitcher-test\/tiny-GGUF\/tiny-q8_0\.gguf: cannot reach http:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/);
  });

  it("a host that accepts but never answers fails after the source timeout, naming the model", { timeout: 30_000 }, async () => {
    const host = await silentHost();
    try {
      await assert.rejects(
        resolveModels(config("silent-model", path.join(tmp, "silent")), tmp, () => {}, { sourceTimeoutMs: 200, downloadProgress: false, env: { HF_ENDPOINT: host.url } }),
        (e: Error) => {
          assert.ok(e instanceof ConfigError);
          assert.match(e.message, /^models\.0 \(silent-model\): cannot fetch hf:\S+: http:\/\/127\.0\.0\.1:\d+ did not answer within 0\.2 s$/);
          return true;
        },
      );
    } finally {
      await host.close();
    }
  });

  it("downloads once from the endpoint, then starts from the cache with the host gone", { timeout: 60_000 }, async () => {
    const gguf = standInPaths()["llama-5m-q8"]!;
    const size = fs.statSync(gguf).size;
    const requested: string[] = [];
    const server = http.createServer((req, res) => {
      requested.push(`${req.method} ${req.url}`);
      if (!req.url?.startsWith("/pitcher-test/tiny-GGUF/resolve/main/tiny-q8_0.gguf")) {
        res.writeHead(req.url === "/" ? 200 : 404).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
      if (req.method === "HEAD") res.end();
      else fs.createReadStream(gguf).pipe(res);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const endpoint = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`;
    const cacheDir = path.join(tmp, "download");
    try {
      const [m] = await resolveModels(config("tiny", cacheDir), tmp, () => {}, { downloadProgress: false, env: { HF_ENDPOINT: endpoint } });
      assert.equal(path.dirname(m!.path), path.join(cacheDir, "models"));
      assert.equal(m!.fileBytes, size);
      assert.ok(
        requested.some((r) => r.startsWith("GET /pitcher-test/tiny-GGUF/resolve/main/tiny-q8_0.gguf")),
        requested.join(", "),
      );
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    const [again] = await resolveModels(config("tiny", cacheDir), tmp, () => {}, { downloadProgress: false, env: { HF_ENDPOINT: await refusedEndpoint() } });
    assert.equal(again!.fileBytes, size);
  });
});
