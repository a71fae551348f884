/**
 * Fetches a remote model (`hf:` reference or http(s) URL) into the cache, in bounded time.
 *
 * Left alone, node-llama-cpp's downloader (ipull) retries an unreachable host about 150 times
 * with back-off (≈12 minutes) and waits on a host that accepts but never answers for as long
 * as the socket lives: a user without network sees a progress spinner that never ends. So a
 * cached file is used without touching the network, the host is probed once before the
 * download starts (a refused connection or a failed DNS lookup fails at once, with its
 * reason), and the download fails when the source stays silent for `timeoutMs`: no answer
 * to the first request, or no new bytes. A slow download that keeps moving is never cut.
 */
import { resolveModelFile } from "node-llama-cpp";

export interface ModelSourceOptions {
  /** Where downloaded models are kept, and looked up first (without the network). */
  directory: string;
  /** How long the source may stay silent before the fetch fails. */
  timeoutMs: number;
  /** Draw node-llama-cpp's download progress bar (the CLI does; tests do not). */
  progress: boolean;
  /** Environment that names the Hugging Face endpoint (`MODEL_ENDPOINT`, `HF_ENDPOINT`). */
  env?: NodeJS.ProcessEnv;
}

export function isRemoteModelRef(ref: string): boolean {
  return ref.startsWith("hf:") || /^https?:\/\//.test(ref);
}

/**
 * The Hugging Face endpoint, with the variables node-llama-cpp reads (and in its order). We
 * pass it to node-llama-cpp explicitly, so that the probe and the download cannot disagree.
 */
export function huggingFaceEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  for (const v of [env.MODEL_ENDPOINT, env.HF_ENDPOINT]) {
    if (!v) continue;
    try {
      const url = new URL(v);
      if (url.protocol === "http:" || url.protocol === "https:") return url.href.endsWith("/") ? url.href : `${url.href}/`;
    } catch {
      // not a URL: node-llama-cpp ignores it too
    }
  }
  return "https://huggingface.co/";
}

/** Resolves a remote reference to a local file; rejects (with the reason, in words) when the source cannot be reached in time. */
export async function fetchModelFile(ref: string, opts: ModelSourceOptions): Promise<string> {
  const hf = huggingFaceEndpoint(opts.env);
  const base = { directory: opts.directory, endpoints: { huggingFace: hf } };
  try {
    // Already downloaded: no network at all, so a configured model keeps working offline.
    return await resolveModelFile(ref, { ...base, download: false, cli: false });
  } catch (e) {
    // Not in the cache ("… download is disabled"), or some split parts missing: fetch below.
    // Anything else (a malformed reference) is the answer, network or not.
    if (!/download is disabled|split parts/.test((e as Error).message)) throw e;
  }
  const origin = new URL(ref.startsWith("hf:") ? hf : ref).origin;
  await probe(origin, opts.timeoutMs);
  return await withStallTimeout(opts.timeoutMs, `${origin} sent nothing for ${seconds(opts.timeoutMs)}`, (signal, onProgress) =>
    resolveModelFile(ref, { ...base, cli: opts.progress, signal, onProgress }),
  );
}

/** One request to the host: any HTTP answer (even a 404) shows that it is reachable. */
async function probe(origin: string, timeoutMs: number): Promise<void> {
  try {
    const res = await fetch(`${origin}/`, { method: "HEAD", redirect: "manual", signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    if (err.name === "TimeoutError") throw new Error(`${origin} did not answer within ${seconds(timeoutMs)}`);
    // fetch wraps the socket's error ("getaddrinfo ENOTFOUND huggingface.co", "connect ECONNREFUSED …").
    throw new Error(`cannot reach ${origin}: ${err.cause?.message ?? err.message}`);
  }
}

/**
 * Runs `work`, failing it when `timeoutMs` pass with no progress reported: its signal aborts
 * (node-llama-cpp cancels a running download on it) and the returned promise rejects at once,
 * also where the work cannot be cancelled (node-llama-cpp's downloader ignores the signal while
 * it asks the host for the file's size).
 */
async function withStallTimeout<T>(timeoutMs: number, reason: string, work: (signal: AbortSignal, onProgress: () => void) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  let stalled!: (e: Error) => void;
  const stall = new Promise<never>((_, reject) => (stalled = reject));
  const timer = setTimeout(() => {
    const e = new Error(reason);
    stalled(e);
    abort.abort(e);
  }, timeoutMs);
  let settled = false;
  const onProgress = () => {
    if (!settled) timer.refresh();
  };
  try {
    return await Promise.race([work(abort.signal, onProgress), stall]);
  } finally {
    settled = true;
    clearTimeout(timer);
  }
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}
