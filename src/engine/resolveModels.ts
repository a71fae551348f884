/**
 * Turns the configured catalog into models the engine can serve: writes the stand-ins on
 * first start, resolves `hf:` references (download only because the user configured one),
 * validates every GGUF file's metadata up front (llama.cpp aborts the process on bad
 * metadata), and derives sizes, KV bytes per token and first cost guesses.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { ConfigError } from "../core/errors.ts";
import type { ServedModel } from "../core/servedModel.ts";
import { DEFAULT_SLO, resolveSlo } from "../core/types.ts";
import type { PitcherConfig } from "../config/schema.ts";
import { STAND_IN_CATALOG } from "./gguf/standInCatalog.ts";
import { standInParameterCount, writeStandInModel } from "./gguf/writeStandInModel.ts";
import { fetchModelFile, isRemoteModelRef } from "./modelSource.ts";

export type { ServedModel };

export interface ResolveModelsOptions {
  /**
   * How long a remote model source (`hf:` or a URL) may stay silent (no answer, or no new
   * bytes during a download) before start-up fails naming the model. Default 30 s.
   */
  sourceTimeoutMs?: number;
  /** Draw the download progress bar on the terminal. Default true. */
  downloadProgress?: boolean;
  /** Environment read for `MODEL_ENDPOINT` / `HF_ENDPOINT` (tests point it at a loopback port). */
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_SOURCE_TIMEOUT_MS = 30_000;

const FILE_TYPES: Record<number, string> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
  32: "BF16",
};

function fileTypeName(v: unknown): string | undefined {
  return typeof v === "number" ? (FILE_TYPES[v] ?? `type ${v}`) : undefined;
}

/**
 * A file that names a pooling type (`<arch>.pooling_type`: mean, CLS or last) is an
 * embedding model; none (0) or rank (4, a reranker) is not.
 */
function embedsByFile(poolingType: unknown): boolean {
  const p = Number(poolingType ?? 0);
  return p >= 1 && p <= 3;
}

export function defaultCacheDir(config: PitcherConfig): string {
  if (config.cacheDir) return path.resolve(config.cacheDir);
  if (process.env.PITCHER_CACHE_DIR) return path.resolve(process.env.PITCHER_CACHE_DIR);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "pitcher");
}

function fingerprintOf(file: string): string {
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, 4 << 20));
    fs.readSync(fd, head, 0, head.length, 0);
    return crypto.createHash("sha256").update(head).update(String(size)).digest("hex").slice(0, 32);
  } finally {
    fs.closeSync(fd);
  }
}

/** Write any missing stand-in model into the cache; returns the catalog entries as config models. */
export function ensureStandIns(cacheDir: string, log: (msg: string) => void = () => {}): { id: string; path: string; description: string }[] {
  const dir = path.join(cacheDir, "standins");
  return STAND_IN_CATALOG.map((e) => {
    const file = path.join(dir, `${e.id}-s${e.shape.seed}-v2.gguf`);
    if (!fs.existsSync(file)) {
      log(`writing stand-in model ${e.id} (${(standInParameterCount(e.shape) / 1e6).toFixed(0)}M parameters) to ${file}`);
      writeStandInModel(e.shape, file);
    }
    return { id: e.id, path: file, description: `Stand-in with random weights (gibberish output): ${e.description}` };
  });
}

async function resolvePath(ref: string, where: string, baseDir: string, cacheDir: string, opts: ResolveModelsOptions): Promise<string> {
  if (isRemoteModelRef(ref)) {
    // Only here does Pitcher touch the network, because the user configured this reference.
    try {
      return await fetchModelFile(ref, {
        directory: path.join(cacheDir, "models"),
        timeoutMs: opts.sourceTimeoutMs ?? DEFAULT_SOURCE_TIMEOUT_MS,
        progress: opts.downloadProgress ?? true,
        ...(opts.env ? { env: opts.env } : {}),
      });
    } catch (e) {
      throw new ConfigError(`${where}: cannot fetch ${ref}: ${(e as Error).message}`);
    }
  }
  const p = path.resolve(baseDir, ref);
  if (!fs.existsSync(p)) throw new ConfigError(`${where}: model file ${p} does not exist`);
  return p;
}

export async function resolveModels(config: PitcherConfig, baseDir: string, log: (msg: string) => void = () => {}, opts: ResolveModelsOptions = {}): Promise<ServedModel[]> {
  const cacheDir = defaultCacheDir(config);
  const entries = config.models
    ? config.models.map((m) => ({ ...m, description: m.description ?? "" }))
    : ensureStandIns(cacheDir, log).map((m) => ({ ...m, slo: undefined, contextTokens: undefined, maxBatch: undefined, embedding: undefined }));
  const standIn = !config.models;
  const ids = new Set<string>();
  const out: ServedModel[] = [];
  for (const [i, m] of entries.entries()) {
    if (ids.has(m.id)) throw new ConfigError(`models.${i}.id: duplicate model id '${m.id}'`);
    ids.add(m.id);
    const file = await resolvePath(m.path, `models.${i} (${m.id})`, baseDir, cacheDir, opts);
    let info: Awaited<ReturnType<typeof readGgufFileInfo>>;
    try {
      info = await readGgufFileInfo(file, { readTensorInfo: false });
    } catch (e) {
      throw new ConfigError(`models.${i} (${m.id}): ${file} is not a readable GGUF file: ${(e as Error).message}`);
    }
    const arch = String(info.metadata.general?.architecture ?? "");
    const a = info.architectureMetadata as Record<string, unknown> & { attention?: Record<string, unknown> };
    const layers = Number(a.block_count);
    const embd = Number(a.embedding_length);
    const heads = Number(a.attention?.head_count);
    const kvHeads = Number(a.attention?.head_count_kv ?? heads);
    const keyLength = Number(a.attention?.key_length ?? embd / heads);
    const valueLength = Number(a.attention?.value_length ?? embd / heads);
    const trained = Number(a.context_length);
    for (const [name, v] of Object.entries({ block_count: layers, embedding_length: embd, "attention.head_count": heads, context_length: trained }))
      if (!Number.isFinite(v) || v <= 0) throw new ConfigError(`models.${i} (${m.id}): ${file} lacks ${arch}.${name}; llama.cpp would abort on it`);
    const fileBytes = fs.statSync(file).size;
    const contextTokens = Math.min(m.contextTokens ?? config.defaults.contextTokens, trained);
    const kvBytesPerToken = layers * kvHeads * (keyLength + valueLength) * 2; // f16 K and V
    const expertCount = a.expert_count === undefined ? undefined : Number(a.expert_count);
    const expertUsed = a.expert_used_count === undefined ? undefined : Number(a.expert_used_count);
    // First guesses (calibration and online learning replace them): CPU decode reads the
    // active weights once per step at roughly 18 GB/s.
    const activeBytes = expertCount && expertUsed ? fileBytes * (0.3 + 0.7 * (expertUsed / expertCount)) : fileBytes;
    const decodeStepMs = Math.max(0.3, activeBytes / 18e6);
    const slo = resolveSlo(DEFAULT_SLO, config.defaults.slo, m.slo);
    const embedding = m.embedding ?? embedsByFile(a.pooling_type);
    out.push({
      id: m.id,
      path: file,
      fingerprint: fingerprintOf(file),
      fileBytes,
      architecture: arch,
      trainedContextTokens: trained,
      ...(fileTypeName(info.metadata.general?.file_type) ? { fileType: fileTypeName(info.metadata.general?.file_type)! } : {}),
      vocabularySize: (info.metadata as { tokenizer?: { ggml?: { tokens?: readonly unknown[] } } }).tokenizer?.ggml?.tokens?.length ?? 0,
      ...(expertCount ? { expertCount } : {}),
      standIn,
      ...(embedding ? { embedding: true } : {}),
      description: m.description,
      profile: {
        id: m.id,
        weightBytes: fileBytes,
        kvBytesPerToken,
        contextTokens,
        maxBatch: m.maxBatch ?? config.defaults.maxBatch,
        slo,
        estimates: {
          decodeStepMs,
          decodeExtraPerSequenceMs: decodeStepMs * 0.5,
          prefillMsPerToken: decodeStepMs / 3,
          loadMs: 60 + fileBytes / 0.6e6,
          unloadMs: 5,
          kvSwapMsPerToken: 0.002,
        },
      },
    });
  }
  return out;
}
