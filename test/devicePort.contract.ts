/**
 * The device port's contract: one suite, run against every implementation (the engine's
 * worker device and the fake device of the pool's unit tests), so the fake cannot drift
 * from what the engine does.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DeviceDownError, type DevicePort, type SampledToken, type Sampling } from "../src/core/devicePort.ts";
import type { ModelId, RequestId } from "../src/core/types.ts";

export interface PortSubject {
  /** Two started devices of one pool (one host tier between them), nothing resident. */
  a: DevicePort;
  b: DevicePort;
  /** A model of both devices' catalogs, with two sequence slots and no end tokens. */
  modelId: ModelId;
  /** The same model under another id, whose end tokens `setEndTokens` picks (read at load). */
  endModelId: ModelId;
  setEndTokens(tokens: number[]): void;
  /** Prompt tokens the model accepts. */
  prompt: number[];
  /** A model of both catalogs that embeds (`ServedModel.embedding`), taking `prompt` too. */
  embedModelId: ModelId;
  /** Damage a request's parked state (so that its restore fails its check). */
  corrupt(requestId: RequestId): void;
  /** Kill a device as a native abort would. */
  crash(device: DevicePort): void;
  close(): Promise<void>;
}

const greedy: Sampling = { temperature: 0 };

function assertClose(actual: number[], expected: number[]): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) < 1e-5, `component ${i}: ${actual[i]} vs ${expected[i]}`);
}

export function describeDevicePort(name: string, make: () => Promise<PortSubject>): void {
  describe(`device port contract: ${name}`, () => {
    let s: PortSubject;
    let m: ModelId;
    before(async () => {
      s = await make();
      m = s.modelId;
      await s.a.load(m, [], []);
      await s.b.load(m, [], []);
    });
    after(async () => s.close());

    const prefill = async (d: DevicePort, requestId: RequestId, sampling = greedy, modelId = m): Promise<SampledToken> => {
      const r = await d.prefill({ modelId, requestId, tokens: s.prompt, final: true, sampling }, []);
      assert.ok(r.first, "a final prefill samples the first token");
      assert.equal(r.first.requestId, requestId);
      assert.ok(r.durationMs >= 0);
      return r.first;
    };

    /** Decode `steps` steps of the given sequences; returns each one's tokens and the steps run. */
    const decode = async (
      d: DevicePort,
      items: { requestId: RequestId; token: number; tokenIndex: number; sampling?: Sampling }[],
      steps: number,
      during?: (tokens: SampledToken[]) => void,
      modelId = m,
    ) => {
      const out = new Map<RequestId, SampledToken[]>(items.map((it) => [it.requestId, []]));
      let calls = 0;
      const r = await d.decode({ modelId, steps, progressEveryMs: 0, items: items.map((it) => ({ sampling: greedy, ...it })) }, [], (tokens) => {
        calls++;
        for (const t of tokens) out.get(t.requestId)!.push(t);
        during?.(tokens);
      });
      return { tokens: out, steps: r.steps, calls, durationMs: r.durationMs };
    };

    /** Greedy tokens of one request: its first, then `n` decoded. */
    const generate = async (d: DevicePort, id: RequestId, n: number, sampling = greedy): Promise<number[]> => {
      const first = await prefill(d, id, sampling);
      const r = await decode(d, [{ requestId: id, token: first.token, tokenIndex: 1, sampling }], n);
      return [first.token, ...r.tokens.get(id)!.map((t) => t.token)];
    };

    it("load makes a model resident, load again is a no-op, evict drops it", async () => {
      await s.a.load(m, [], []);
      await s.a.evict([m], []);
      await assert.rejects(s.a.prefill({ modelId: m, requestId: "gone", tokens: s.prompt, final: true, sampling: greedy }, []), (e) => !(e instanceof DeviceDownError));
      await s.a.load(m, [], []);
      await prefill(s.a, "back");
      await s.a.release(["back"]);
    });

    it("prefill samples the first token; decode reports one token per sequence per step", async () => {
      const first = await prefill(s.a, "p1");
      assert.equal(first.end, false);
      const r = await decode(s.a, [{ requestId: "p1", token: first.token, tokenIndex: 1 }], 5);
      assert.equal(r.steps, 5);
      assert.equal(r.calls, 5, "progressEveryMs 0: every step is reported at once");
      assert.equal(r.tokens.get("p1")!.length, 5);
      for (const t of r.tokens.get("p1")!) assert.equal(t.end, false);
      await s.a.release(["p1"]);
    });

    it("a prefill in chunks samples what one prefill samples", async () => {
      const whole = await prefill(s.a, "whole");
      const half = Math.floor(s.prompt.length / 2);
      const r1 = await s.a.prefill({ modelId: m, requestId: "chunks", tokens: s.prompt.slice(0, half), final: false, sampling: greedy }, []);
      assert.equal(r1.first, undefined);
      const r2 = await s.a.prefill({ modelId: m, requestId: "chunks", tokens: s.prompt.slice(half), final: true, sampling: greedy }, []);
      assert.equal(r2.first!.token, whole.token);
      await s.a.release(["whole", "chunks"]);
    });

    it("greedy decode is deterministic, alone or batched", async () => {
      const alone = await generate(s.a, "g1", 8);
      await s.a.release(["g1"]);
      const again = await generate(s.a, "g2", 8);
      await s.a.release(["g2"]);
      assert.deepEqual(again, alone);
      const f3 = await prefill(s.a, "g3");
      const f4 = await prefill(s.a, "g4");
      const r = await decode(
        s.a,
        [
          { requestId: "g3", token: f3.token, tokenIndex: 1 },
          { requestId: "g4", token: f4.token, tokenIndex: 1 },
        ],
        8,
      );
      assert.deepEqual([f3.token, ...r.tokens.get("g3")!.map((t) => t.token)], alone);
      assert.deepEqual([f4.token, ...r.tokens.get("g4")!.map((t) => t.token)], alone);
      await s.a.release(["g3", "g4"]);
    });

    for (const sampling of [greedy, { temperature: 0.9, seed: 7 }]) {
      it(`${sampling.temperature ? "seeded sampling" : "greedy"}: swapped out on one device and in on another, the same next tokens as never swapped`, async () => {
        const id = `ref-${sampling.temperature}`;
        const ref = await generate(s.a, id, 12, sampling);
        await s.a.release([id]);

        const moved = `moved-${sampling.temperature}`;
        const out = await generate(s.a, moved, 4, sampling);
        const parked = await s.a.swapOut(m, [moved], []);
        assert.ok(parked.bytes! > 0);
        const back = await s.b.swapIn(m, [moved], []);
        assert.equal(back.failed, undefined);
        assert.ok(back.bytes! > 0);
        const r = await decode(s.b, [{ requestId: moved, token: out.at(-1)!, tokenIndex: out.length, sampling }], 8);
        out.push(...r.tokens.get(moved)!.map((t) => t.token));
        await s.b.release([moved]);
        assert.deepEqual(out, ref);
      });
    }

    it("release frees a sequence slot, alone or ahead of a command", async () => {
      await prefill(s.a, "r1");
      await prefill(s.a, "r2");
      // Two slots, both taken: a third sequence is refused (the command fails as a whole).
      await assert.rejects(s.a.prefill({ modelId: m, requestId: "r3", tokens: s.prompt, final: true, sampling: greedy }, []), (e) => !(e instanceof DeviceDownError));
      const r = await s.a.prefill({ modelId: m, requestId: "r3", tokens: s.prompt, final: true, sampling: greedy }, ["r1"]);
      assert.ok(r.first);
      await s.a.release(["r2", "r3"]);
      await prefill(s.a, "r4");
      await prefill(s.a, "r5");
      await s.a.release(["r4", "r5"]);
    });

    it("cancel takes a sequence out of the running decode; the others run on", async () => {
      const f1 = await prefill(s.a, "c1");
      const f2 = await prefill(s.a, "c2");
      const steps = 200;
      const run = decode(
        s.a,
        [
          { requestId: "c1", token: f1.token, tokenIndex: 1 },
          { requestId: "c2", token: f2.token, tokenIndex: 1 },
        ],
        steps,
      );
      s.a.cancel(["c1"]);
      const r = await run;
      assert.equal(r.steps, steps);
      assert.equal(r.tokens.get("c2")!.length, steps);
      assert.ok(r.tokens.get("c1")!.length < steps, `c1 left the run (${r.tokens.get("c1")!.length} tokens)`);
      await s.a.release(["c1", "c2"]);
    });

    it("yieldDecode ends the running decode after its current step", async () => {
      const f = await prefill(s.a, "y1");
      const steps = 200;
      const run = decode(s.a, [{ requestId: "y1", token: f.token, tokenIndex: 1 }], steps);
      s.a.yieldDecode();
      const r = await run;
      assert.ok(r.steps! >= 1 && r.steps! < steps, `ran ${r.steps} steps`);
      assert.equal(r.tokens.get("y1")!.length, r.steps);
      await s.a.release(["y1"]);
    });

    it("a sampled end token is marked and takes its sequence out of the run", async () => {
      const ref = await generate(s.a, "e-ref", 8);
      await s.a.release(["e-ref"]);
      // The first decoded token not seen before it: the run must stop exactly there.
      const k = ref.findIndex((t, i) => i >= 2 && !ref.slice(0, i).includes(t));
      assert.ok(k >= 2, `a fresh token among ${ref.join(",")}`);
      s.setEndTokens([ref[k]!]);
      await s.a.load(s.endModelId, [], []);
      const first = await prefill(s.a, "e1", greedy, s.endModelId);
      assert.equal(first.end, false);
      const r = await decode(s.a, [{ requestId: "e1", token: first.token, tokenIndex: 1 }], 8, undefined, s.endModelId);
      const got = r.tokens.get("e1")!;
      assert.deepEqual(
        got.map((t) => t.token),
        ref.slice(1, k + 1),
      );
      assert.deepEqual(
        got.map((t) => t.end),
        [...Array(k - 1).fill(false), true],
      );
      assert.equal(r.steps, k);
      await s.a.evict([s.endModelId], ["e1"]);
    });

    it("a restore that fails its check fails only that request", async () => {
      await prefill(s.a, "k1");
      await prefill(s.a, "k2");
      await s.a.swapOut(m, ["k1", "k2"], []);
      s.corrupt("k1");
      const r = await s.b.swapIn(m, ["k1", "k2", "never-parked"], []);
      assert.deepEqual(
        r.failed?.map((f) => f.requestId),
        ["k1", "never-parked"],
      );
      for (const f of r.failed!) assert.ok(f.error.length > 0);
      assert.match(r.failed![0]!.error, /corrupt/);
      await decode(s.b, [{ requestId: "k2", token: s.prompt[0]!, tokenIndex: 1 }], 1);
      await s.b.release(["k2"]);
      s.a.discard("k1");
    });

    it("discard removes a request's parked state, whichever device parked it", async () => {
      await prefill(s.a, "d1");
      await s.a.swapOut(m, ["d1"], []);
      s.b.discard("d1");
      const r = await s.a.swapIn(m, ["d1"], []);
      assert.deepEqual(
        r.failed?.map((f) => f.requestId),
        ["d1"],
      );
      s.a.discard("d1");
    });

    it("an embedding prefill returns the whole input's unit vector (the same whole or in chunks, on either device) and keeps nothing", async () => {
      const e = s.embedModelId;
      await s.a.load(e, [], []);
      await s.b.load(e, [], []);
      const embed = async (d: DevicePort, requestId: RequestId, tokens: number[], final = true) =>
        d.prefill({ modelId: e, requestId, tokens, final, sampling: greedy, embed: true }, []);
      const whole = await embed(s.a, "e1", s.prompt);
      assert.equal(whole.first, undefined, "an embedding samples no token");
      assert.equal(whole.embedding?.requestId, "e1");
      const v = whole.embedding.vector;
      assert.ok(v.length > 0);
      assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-4, "unit length");
      const half = Math.floor(s.prompt.length / 2);
      assert.equal((await embed(s.a, "e2", s.prompt.slice(0, half), false)).embedding, undefined);
      const chunked = await embed(s.a, "e2", s.prompt.slice(half));
      assertClose(chunked.embedding!.vector, v);
      assertClose((await embed(s.b, "e3", s.prompt)).embedding!.vector, v);
      const other = (await embed(s.a, "e4", [...s.prompt].reverse())).embedding!.vector;
      assert.ok(
        other.some((x, i) => Math.abs(x - v[i]!) > 1e-3),
        "another input, another vector",
      );
      // Nothing stays behind: releases of ended embeddings are no-ops, and the model evicts.
      await s.a.release(["e1", "e2", "e4"]);
      // An embedding model generates nothing; a generating model embeds nothing.
      await assert.rejects(s.a.prefill({ modelId: e, requestId: "gen", tokens: s.prompt, final: true, sampling: greedy }, []), (err) => !(err instanceof DeviceDownError));
      await assert.rejects(
        s.a.prefill({ modelId: m, requestId: "emb-on-m", tokens: s.prompt, final: true, sampling: greedy, embed: true }, []),
        (err) => !(err instanceof DeviceDownError),
      );
      await s.a.evict([e], []);
      await s.b.evict([e], []);
      await prefill(s.a, "after-embed");
      await s.a.release(["after-embed"]);
    });

    it("a crash rejects the call under way with DeviceDownError and fires onCrash; start() brings the device back empty; parked KV survives", async () => {
      const ref = await generate(s.b, "survivor-ref", 6);
      await s.b.release(["survivor-ref"]);
      const survivor = await generate(s.a, "survivor", 2);
      await s.a.swapOut(m, ["survivor"], []);

      const crashed = new Promise<string>((resolve) => s.a.onCrash(resolve));
      const f = await prefill(s.a, "doomed");
      let killed = false;
      const run = decode(s.a, [{ requestId: "doomed", token: f.token, tokenIndex: 1 }], 500, () => {
        if (killed) return;
        killed = true;
        s.crash(s.a);
      });
      await assert.rejects(run, (e) => e instanceof DeviceDownError && e.deviceId === s.a.id);
      assert.equal(typeof (await crashed), "string");
      await assert.rejects(s.a.load(m, [], []), (e) => e instanceof DeviceDownError);

      await s.a.stop();
      await s.a.start();
      await assert.rejects(s.a.prefill({ modelId: m, requestId: "fresh", tokens: s.prompt, final: true, sampling: greedy }, []), (e) => !(e instanceof DeviceDownError));
      await s.a.load(m, [], []);
      await prefill(s.a, "fresh");
      await s.a.release(["fresh"]);

      const back = await s.b.swapIn(m, ["survivor"], []);
      assert.equal(back.failed, undefined);
      const r = await decode(s.b, [{ requestId: "survivor", token: survivor.at(-1)!, tokenIndex: survivor.length }], 4);
      assert.deepEqual([...survivor, ...r.tokens.get("survivor")!.map((t) => t.token)], ref);
      await s.b.release(["survivor"]);
    });
  });
}
