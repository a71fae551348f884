/**
 * Writes deterministic random-weight GGUF models ("stand-ins") so that Pitcher runs on a
 * fresh machine with no downloads. The files are real llama.cpp models: real shapes, real
 * tokenizer, real compute cost; only the weights are random, so the text is gibberish.
 *
 * Format facts: ../shared/docs/engine.md ("Writing GGUF files"). GGUF v3, little-endian.
 */
import fs from "node:fs";
import path from "node:path";
import { createRng, type Rng } from "../../core/random.ts";
import { buildStandInVocabulary } from "./standInVocabulary.ts";

export type StandInWeightType = "f32" | "f16" | "q8_0";

export interface StandInModelShape {
  /** Stable name, written to general.name. */
  name: string;
  embeddingLength: number;
  blockCount: number;
  headCount: number;
  headCountKv: number;
  feedForwardLength: number;
  vocabularySize: number;
  contextLength: number;
  weightType: StandInWeightType;
  /** Mixture-of-experts (llama architecture with experts) when set. */
  experts?: { count: number; used: number };
  /**
   * An embedding model: how llama.cpp pools the tokens' states into one vector
   * (`llama.pooling_type`). Pitcher serves a model whose file names one as embedding-only.
   */
  pooling?: "mean" | "cls" | "last";
  seed: number;
}

const GGUF_MAGIC = 0x46554747;
const ALIGNMENT = 32;

enum ValueType {
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
}

/** llama_pooling_type values. */
const POOLING_TYPE = { mean: 1, cls: 2, last: 3 } as const;

const GGML_TYPE = { f32: 0, f16: 1, q8_0: 8 } as const;
/** llama_ftype values for general.file_type. */
const FILE_TYPE = { f32: 0, f16: 1, q8_0: 7 } as const;

type KvValue =
  | { type: "u32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "str"; value: string }
  | { type: "strs"; value: string[] }
  | { type: "f32s"; value: number[] }
  | { type: "i32s"; value: number[] };

interface TensorPlan {
  name: string;
  /** ggml order: [input, output(, expert)] */
  dims: number[];
  type: StandInWeightType;
  /** How to fill it: norms are ones, weights random, some rows zeroed. */
  fill: "ones" | "random";
  zeroRows?: number[];
  scale: number;
}

/** Growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.length);
    this.length += 4;
  }
  u64(v: number): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  f32(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.length);
    this.length += 4;
  }
  str(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.length);
    this.length += bytes.length;
  }
  pad(alignment: number): void {
    const rem = this.length % alignment;
    if (rem === 0) return;
    this.ensure(alignment - rem);
    this.buf.fill(0, this.length, this.length + alignment - rem);
    this.length += alignment - rem;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeKv(w: ByteWriter, key: string, v: KvValue): void {
  w.str(key);
  switch (v.type) {
    case "u32":
      w.u32(ValueType.UINT32);
      w.u32(v.value);
      break;
    case "f32":
      w.u32(ValueType.FLOAT32);
      w.f32(v.value);
      break;
    case "bool":
      w.u32(ValueType.BOOL);
      w.u8(v.value ? 1 : 0);
      break;
    case "str":
      w.u32(ValueType.STRING);
      w.str(v.value);
      break;
    case "strs":
      w.u32(ValueType.ARRAY);
      w.u32(ValueType.STRING);
      w.u64(v.value.length);
      for (const s of v.value) w.str(s);
      break;
    case "f32s":
      w.u32(ValueType.ARRAY);
      w.u32(ValueType.FLOAT32);
      w.u64(v.value.length);
      for (const x of v.value) w.f32(x);
      break;
    case "i32s":
      w.u32(ValueType.ARRAY);
      w.u32(ValueType.INT32);
      w.u64(v.value.length);
      for (const x of v.value) w.i32(x);
      break;
  }
}

function tensorBytes(t: TensorPlan): number {
  const elements = t.dims.reduce((a, b) => a * b, 1);
  switch (t.type) {
    case "f32":
      return elements * 4;
    case "f16":
      return elements * 2;
    case "q8_0":
      return (elements / 32) * 34;
  }
}

/** Float to IEEE half bits, good for the small values we write (no NaN handling needed). */
function toHalfBits(value: number): number {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant = (mant | 0x800000) >>> (1 - exp);
    return sign | ((mant + 0x1000) >>> 13);
  }
  if (exp >= 31) return sign | 0x7c00;
  const half = sign | (exp << 10) | ((mant + 0x1000) >>> 13);
  return half;
}

/** Fill `out` with the tensor's bytes for rows [row0, row0 + rows). A row is dims[0] elements. */
function fillRows(t: TensorPlan, rng: Rng, out: Buffer, row0: number, rows: number): void {
  const rowLen = t.dims[0]!;
  const zero = new Set(t.zeroRows ?? []);
  let o = 0;
  const halfTable = t.type === "f16" ? buildHalfTable(t.scale) : undefined;
  const dBits = toHalfBits(t.scale / 127);
  for (let r = row0; r < row0 + rows; r++) {
    const isZero = zero.has(r);
    if (t.type === "q8_0") {
      for (let b = 0; b < rowLen / 32; b++) {
        out.writeUInt16LE(isZero ? 0 : dBits, o);
        o += 2;
        for (let i = 0; i < 32; i++) {
          const q = t.fill === "ones" ? 127 : isZero ? 0 : Math.floor(rng.next() * 255) - 127;
          out.writeInt8(q, o++);
        }
      }
    } else if (t.type === "f16") {
      for (let i = 0; i < rowLen; i++) {
        const bits = t.fill === "ones" ? 0x3c00 : isZero ? 0 : halfTable![Math.floor(rng.next() * 256)]!;
        out.writeUInt16LE(bits, o);
        o += 2;
      }
    } else {
      for (let i = 0; i < rowLen; i++) {
        const v = t.fill === "ones" ? 1 : isZero ? 0 : (rng.next() * 2 - 1) * t.scale;
        out.writeFloatLE(v, o);
        o += 4;
      }
    }
  }
}

function buildHalfTable(scale: number): Uint16Array {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) table[i] = toHalfBits(((i - 127.5) / 127.5) * scale);
  return table;
}

function planTensors(shape: StandInModelShape, controlTokenIds: number[]): TensorPlan[] {
  const E = shape.embeddingLength;
  const V = shape.vocabularySize;
  const F = shape.feedForwardLength;
  const headDim = E / shape.headCount;
  const Ekv = headDim * shape.headCountKv;
  const wt = shape.weightType;
  const s = 0.08;
  const plans: TensorPlan[] = [
    { name: "token_embd.weight", dims: [E, V], type: wt, fill: "random", scale: 1.0 },
    { name: "output_norm.weight", dims: [E], type: "f32", fill: "ones", scale: 1 },
    // Zero rows for control tokens keep their logits at 0 so random weights never pick EOS
    // by argmax: a stand-in then generates exactly max_tokens, which tests and benchmarks want.
    { name: "output.weight", dims: [E, V], type: wt, fill: "random", zeroRows: controlTokenIds, scale: s },
  ];
  for (let l = 0; l < shape.blockCount; l++) {
    const p = `blk.${l}.`;
    plans.push(
      { name: p + "attn_norm.weight", dims: [E], type: "f32", fill: "ones", scale: 1 },
      { name: p + "attn_q.weight", dims: [E, E], type: wt, fill: "random", scale: s },
      { name: p + "attn_k.weight", dims: [E, Ekv], type: wt, fill: "random", scale: s },
      { name: p + "attn_v.weight", dims: [E, Ekv], type: wt, fill: "random", scale: s },
      { name: p + "attn_output.weight", dims: [E, E], type: wt, fill: "random", scale: s },
      { name: p + "ffn_norm.weight", dims: [E], type: "f32", fill: "ones", scale: 1 },
    );
    if (shape.experts) {
      const X = shape.experts.count;
      plans.push(
        { name: p + "ffn_gate_inp.weight", dims: [E, X], type: "f32", fill: "random", scale: s },
        { name: p + "ffn_gate_exps.weight", dims: [E, F, X], type: wt, fill: "random", scale: s },
        { name: p + "ffn_up_exps.weight", dims: [E, F, X], type: wt, fill: "random", scale: s },
        { name: p + "ffn_down_exps.weight", dims: [F, E, X], type: wt, fill: "random", scale: s },
      );
    } else {
      plans.push(
        { name: p + "ffn_gate.weight", dims: [E, F], type: wt, fill: "random", scale: s },
        { name: p + "ffn_up.weight", dims: [E, F], type: wt, fill: "random", scale: s },
        { name: p + "ffn_down.weight", dims: [F, E], type: wt, fill: "random", scale: s },
      );
    }
  }
  return plans;
}

/** Parameters of a shape (what a catalog reports as the model's size). */
export function standInParameterCount(shape: StandInModelShape): number {
  return planTensors(shape, []).reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0);
}

/**
 * Write the model to `filePath` atomically (a temporary file renamed into place), so that a
 * crash mid-write never leaves a truncated model behind that would abort llama.cpp.
 */
export function writeStandInModel(shape: StandInModelShape, filePath: string): { fileBytes: number } {
  const E = shape.embeddingLength;
  if (E % shape.headCount !== 0) throw new Error(`${shape.name}: embeddingLength must divide by headCount`);
  if (shape.weightType === "q8_0" && (E % 32 !== 0 || shape.feedForwardLength % 32 !== 0)) throw new Error(`${shape.name}: Q8_0 rows must be multiples of 32`);

  const vocab = buildStandInVocabulary(shape.vocabularySize);
  const tensors = planTensors(shape, vocab.controlTokenIds);
  const arch = "llama";
  const kv: [string, KvValue][] = [
    ["general.architecture", { type: "str", value: arch }],
    ["general.name", { type: "str", value: shape.name }],
    ["general.alignment", { type: "u32", value: ALIGNMENT }],
    ["general.file_type", { type: "u32", value: FILE_TYPE[shape.weightType] }],
    ["general.description", { type: "str", value: "Pitcher stand-in model: random weights, real shapes. Output is gibberish." }],
    [`${arch}.context_length`, { type: "u32", value: shape.contextLength }],
    [`${arch}.embedding_length`, { type: "u32", value: E }],
    [`${arch}.block_count`, { type: "u32", value: shape.blockCount }],
    [`${arch}.feed_forward_length`, { type: "u32", value: shape.feedForwardLength }],
    [`${arch}.attention.head_count`, { type: "u32", value: shape.headCount }],
    [`${arch}.attention.head_count_kv`, { type: "u32", value: shape.headCountKv }],
    [`${arch}.attention.layer_norm_rms_epsilon`, { type: "f32", value: 1e-5 }],
    [`${arch}.rope.dimension_count`, { type: "u32", value: E / shape.headCount }],
    [`${arch}.vocab_size`, { type: "u32", value: shape.vocabularySize }],
    ["tokenizer.ggml.model", { type: "str", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "strs", value: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: "f32s", value: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: "i32s", value: vocab.tokenTypes }],
    ["tokenizer.ggml.unknown_token_id", { type: "u32", value: vocab.unknownId }],
    ["tokenizer.ggml.bos_token_id", { type: "u32", value: vocab.bosId }],
    ["tokenizer.ggml.eos_token_id", { type: "u32", value: vocab.eosId }],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
  ];
  if (shape.experts) {
    kv.push([`${arch}.expert_count`, { type: "u32", value: shape.experts.count }], [`${arch}.expert_used_count`, { type: "u32", value: shape.experts.used }]);
  }
  if (shape.pooling) kv.push([`${arch}.pooling_type`, { type: "u32", value: POOLING_TYPE[shape.pooling] }]);

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(kv.length);
  for (const [k, v] of kv) writeKv(w, k, v);
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GGML_TYPE[t.type]);
    w.u64(offset);
    offsets.push(offset);
    offset += tensorBytes(t);
    offset = Math.ceil(offset / ALIGNMENT) * ALIGNMENT;
  }
  w.pad(ALIGNMENT);

  fs.mkdirSync(path.dirname(filePath), { recursive: true });
  const tmp = `${filePath}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, "w");
  try {
    fs.writeSync(fd, w.bytes());
    let written = 0;
    const rng = createRng(shape.seed);
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i]!;
      const rowBytes = tensorBytes({ ...t, dims: [t.dims[0]!] });
      const totalRows = t.dims.slice(1).reduce((a, b) => a * b, 1);
      const rowsPerChunk = Math.max(1, Math.floor((4 << 20) / rowBytes));
      for (let r = 0; r < totalRows; r += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, totalRows - r);
        const chunk = Buffer.alloc(rows * rowBytes);
        fillRows(t, rng, chunk, r, rows);
        fs.writeSync(fd, chunk);
        written += chunk.length;
      }
      const padded = (i + 1 < tensors.length ? offsets[i + 1]! : Math.ceil(written / ALIGNMENT) * ALIGNMENT) - written;
      if (padded > 0) {
        fs.writeSync(fd, Buffer.alloc(padded));
        written += padded;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, filePath);
  return { fileBytes: fs.statSync(filePath).size };
}
