// The fuzz suite: a few thousand hostile requests, generated from the API's own schemas and
// mutated (test/fuzz/requests.ts), against a real server. Every answer is a success or a 4xx
// in the OpenAI error body, none hangs, the server stays up, its request log stays valid JSON,
// and valid requests still work afterwards. Most cases go through Fastify's inject (every
// hook and handler, no socket); a subset goes over real sockets. The seed is fixed, so a run
// is repeatable: FUZZ_SEED=… FUZZ_RUNS=… explore further.
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { answerProblem, describeCase, type FuzzCase, fuzzCase } from "./fuzz/requests.ts";
import { series, standInPaths, startTestServer, waitFor } from "./helpers.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 20261128);
const INJECTED = Number(process.env.FUZZ_RUNS ?? 1800);
const OVER_SOCKETS = Math.ceil(INJECTED / 6);
const CONCURRENCY = 8;
/** A request unanswered this long is a hang (generations here are a few tokens). */
const HANG_MS = 60_000;

async function inParallel<T>(items: T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await run(items[next++]!);
    }),
  );
}

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${HANG_MS} ms: ${what}`)), HANG_MS)));
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

describe("fuzz: hostile request bodies against a real server", () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let logText = "";
  const failures: string[] = [];
  const statuses = new Map<number, number>();
  const note = (c: FuzzCase, status: number, contentType: string | undefined, body: string) => {
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const problem = answerProblem(status, contentType, body);
    if (problem) failures.push(`${problem}\n    for ${describeCase(c)}`);
  };

  before(async () => {
    const log = new PassThrough();
    log.on("data", (d) => (logText += d));
    server = await startTestServer(
      {
        devices: { count: 1 },
        scheduler: { admissionTtftFactor: 0 },
        // A short context: prompts past it are refused cheaply, and no generation is long.
        models: [{ id: "m", path: standInPaths()["llama-5m-q8"], contextTokens: 64 }],
        server: { maxPromptBytes: 64 * 1024 },
      },
      { requestLog: log },
    );
  });
  after(() => server.shutdown());

  it(`${INJECTED} cases through every hook and handler (inject): a success or a 4xx in the OpenAI body`, async (t) => {
    const cases = fc.sample(fuzzCase("m"), { numRuns: INJECTED, seed: SEED });
    await inParallel(cases, CONCURRENCY, async (c) => {
      const res = await within(
        server.app.inject({ method: "POST", url: c.route, headers: c.contentType === null ? {} : { "content-type": c.contentType }, payload: c.payload }),
        describeCase(c),
      );
      note(c, res.statusCode, res.headers["content-type"] as string | undefined, res.body);
    });
    t.diagnostic(`answers by status: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${INJECTED} cases failed`);
    assert.ok((statuses.get(200) ?? 0) > INJECTED / 20, `some cases succeed: ${JSON.stringify([...statuses])}`);
  });

  it(`${OVER_SOCKETS} cases over real sockets`, async () => {
    const cases = fc.sample(fuzzCase("m"), { numRuns: OVER_SOCKETS, seed: SEED + 1 });
    await inParallel(cases, CONCURRENCY, async (c) => {
      const res = await within(
        fetch(server.url + c.route, {
          method: "POST",
          headers: c.contentType === null ? {} : { "content-type": c.contentType },
          body: c.payload,
          signal: AbortSignal.timeout(HANG_MS),
        }),
        describeCase(c),
      );
      note(c, res.status, res.headers.get("content-type") ?? undefined, await res.text());
    });
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${OVER_SOCKETS} cases failed`);
  });

  it("afterwards: the server is up, nothing is left running, valid requests work, no 5xx was counted, the log is JSON", async () => {
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    await waitFor(() => server.pool.activeRequests === 0);
    const chat = await server.client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Hello" }], max_tokens: 3 });
    assert.equal(chat.choices[0]!.message.role, "assistant");
    const done = await server.client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 3, stream: true });
    let pieces = 0;
    for await (const _ of done) pieces++;
    assert.ok(pieces >= 1);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const status of ["500", "502", "503", "504"]) assert.equal(series(metrics, "pitcher_http_responses_total", { status }), undefined, `no ${status} answers`);
    const lines = logText.split("\n").filter((l) => l.length > 0);
    assert.ok(lines.length > INJECTED / 2, "refusals and requests were logged");
    for (const l of lines) JSON.parse(l);
  });
});
