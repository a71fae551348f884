import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { readGgufFileInfo } from "node-llama-cpp";
import { standInParameterCount, writeStandInModel, type StandInModelShape } from "./writeStandInModel.ts";

const shape: StandInModelShape = {
  name: "unit",
  embeddingLength: 64,
  blockCount: 2,
  headCount: 4,
  headCountKv: 2,
  feedForwardLength: 128,
  vocabularySize: 600,
  contextLength: 256,
  weightType: "q8_0",
  seed: 5,
};

function tmp(name: string): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), "gguf-")), name);
}

describe("stand-in GGUF writer", () => {
  it("writes a file llama.cpp's reader accepts, with the shapes asked for", async () => {
    const file = tmp("m.gguf");
    writeStandInModel(shape, file);
    const info = await readGgufFileInfo(file);
    const a = info.architectureMetadata as Record<string, any>;
    assert.equal(info.metadata.general.architecture, "llama");
    assert.equal(a.embedding_length, 64);
    assert.equal(a.block_count, 2);
    assert.equal(a.attention.head_count_kv, 2);
    assert.equal((info.metadata as any).tokenizer.ggml.tokens.length, 600);
    const params = info.tensorInfo!.reduce((n, t) => n + t.dimensions.reduce((x: number, y) => x * Number(y), 1), 0);
    assert.equal(params, standInParameterCount(shape));
  });

  it("is deterministic per seed and differs across seeds", () => {
    const hash = (f: string) => crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex");
    const a = tmp("a.gguf");
    const b = tmp("b.gguf");
    const c = tmp("c.gguf");
    writeStandInModel(shape, a);
    writeStandInModel(shape, b);
    writeStandInModel({ ...shape, seed: 6 }, c);
    assert.equal(hash(a), hash(b));
    assert.notEqual(hash(a), hash(c));
  });

  it("writes Mixture-of-Experts tensors and F16 weights", async () => {
    const file = tmp("moe.gguf");
    writeStandInModel({ ...shape, weightType: "f16", experts: { count: 4, used: 2 } }, file);
    const info = await readGgufFileInfo(file);
    const names = info.tensorInfo!.map((t) => t.name);
    assert.ok(names.includes("blk.0.ffn_gate_exps.weight"));
    assert.ok(!names.includes("blk.0.ffn_gate.weight"));
    assert.equal((info.architectureMetadata as Record<string, unknown>).expert_count, 4);
  });

  it("refuses Q8_0 shapes whose rows are not multiples of 32", () => {
    assert.throws(() => writeStandInModel({ ...shape, embeddingLength: 48, headCount: 4 }, tmp("x.gguf")), /multiples of 32/);
  });
});
