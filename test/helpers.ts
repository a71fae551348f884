import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { startServer, type RunningServer, type ServeOptions } from "../src/cli/serve.ts";
import type { CommandRecord } from "../src/runtime/Pool.ts";
import { parseConfig } from "../src/config/loadConfig.ts";
import { ensureStandIns } from "../src/engine/resolveModels.ts";
import { STAND_IN_CATALOG } from "../src/engine/gguf/standInCatalog.ts";

export const ROOT = path.resolve(import.meta.dirname, "..");
export const CACHE_DIR = path.join(ROOT, ".pitcher-cache");
export const STORIES = path.resolve(ROOT, "../shared/models/stories260K.gguf");

/** Paths of the stand-in models (written on first use). */
export function standInPaths(): Record<string, string> {
  return Object.fromEntries(ensureStandIns(CACHE_DIR).map((m) => [m.id, m.path]));
}

export const STAND_IN_IDS = STAND_IN_CATALOG.map((e) => e.id);

export async function startTestServer(config: Record<string, unknown> = {}, serve: Partial<ServeOptions> = {}): Promise<RunningServer & { client: OpenAI }> {
  const cfg = parseConfig(
    {
      cacheDir: CACHE_DIR,
      ...config,
      scheduler: { calibrate: false, ...((config.scheduler as object) ?? {}) },
      server: { port: 0, ...((config.server as object) ?? {}) },
    },
    "test",
  );
  const server = await startServer({ config: cfg, log: () => {}, ...serve });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  return Object.assign(server, { client });
}

/**
 * One device that holds one of two 62 MB models at a time: "long" (default SLO) and "urgent"
 * (TTFT 400 ms), so an urgent request preempts a long one. Records every command.
 */
export async function startPreemptionServer(serve: Partial<ServeOptions> = {}): Promise<Awaited<ReturnType<typeof startTestServer>> & { commands: CommandRecord[] }> {
  const paths = standInPaths();
  const server = await startTestServer(
    {
      // Admission control would refuse "urgent" whenever the machine is slow, and the
      // late-wait cap end it; these tests are about preemption.
      scheduler: { admissionTtftFactor: 0, lateWaitCapFactor: false },
      devices: { count: 1, memory: "100MB" },
      models: [
        { id: "long", path: paths["llama-58m-q8-a"] },
        { id: "urgent", path: paths["llama-58m-q8-b"], slo: { ttftMs: 400, tbtMs: 100 } },
      ],
    },
    serve,
  );
  const commands: CommandRecord[] = [];
  server.pool.on("command", (c) => commands.push(c));
  return Object.assign(server, { commands });
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json };
}

/** Run `pitcher <args>` as a user does, to its exit. */
export function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { cwd: ROOT });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((r) => child.on("exit", (code) => r({ code, stdout, stderr })));
}

/** Poll a condition (for events that have no promise of their own). */
export async function waitFor(cond: () => boolean, limitMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > limitMs) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A config file with this text, in a fresh temporary folder. */
export function writeConfig(text: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pitcher-cfg-")), "pitcher.yaml");
  fs.writeFileSync(file, text);
  return file;
}

/** `pitcher serve` as a user runs it, in its own process; `url` resolves once it listens. */
export function spawnServe(args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    child.stdout.on("data", () => {
      const m = /listening on (http:\/\/\S+)/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`exited early: ${stderr}`)));
  });
  url.catch(() => {}); // awaited only by tests that expect the server to come up
  return { child, url, exited, output: () => ({ stdout, stderr }) };
}

/** The value of one series in Prometheus text, or undefined when absent. */
export function series(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-z_:]+)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}
