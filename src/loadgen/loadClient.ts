/**
 * Open-loop load against any OpenAI-compatible endpoint: each request of a workload is sent
 * at its arrival time whatever happened to the earlier ones, streamed, and every token's
 * arrival is recorded on the client's clock. Bounded: nothing is sent after the workload
 * ends, and requests still running `drainTimeoutMs` after the last arrival are aborted
 * (and count as misses).
 */
import type { RequestTrace } from "../core/slo.ts";
import type { WorkloadRequest } from "../workload/workload.ts";

export interface LoadOptions {
  baseUrl: string;
  drainTimeoutMs?: number;
  /** Called when each request ends (progress bars). */
  onDone?: (trace: RequestTrace) => void;
  /** Sent as `Authorization: Bearer <key>` (what the official `openai` client's `apiKey` sends). */
  apiKey?: string;
  /** A tenant's own key, by the tenant's name (workload tenants); others send `apiKey`. */
  tenantKeys?: ReadonlyMap<string, string>;
}

export interface LoadResult {
  traces: RequestTrace[];
  durationMs: number;
  errors: Record<string, number>;
  /** Per request, in the workload's order: the error it ended with, or null. */
  requestErrors: (string | null)[];
}

/** A prompt of about `tokens` tokens for llama-family tokenizers (BOS + one word per token). */
export function promptOfTokens(tokens: number, index: number): string {
  const words = ["the", "pool", "of", "models", "served", "every", "token", "on", "time"];
  const out: string[] = [String(index)];
  for (let i = 1; i < tokens - 1; i++) out.push(words[(i + index) % words.length]!);
  return out.join(" ");
}

async function runOne(
  req: WorkloadRequest,
  startMs: number,
  opts: LoadOptions,
  signal: AbortSignal,
  counts: Record<string, number>,
): Promise<{ trace: RequestTrace; error: string | null }> {
  const trace: RequestTrace = { modelId: req.modelId, arrivalMs: req.arrivalMs, tokenTimesMs: [], expectedTokens: req.outputTokens, ok: false };
  let error: string | null = null;
  const fail = (code: string) => {
    error = code;
    counts[code] = (counts[code] ?? 0) + 1;
  };
  const now = () => performance.now() - startMs;
  const key = (req.tenant && opts.tenantKeys?.get(req.tenant.id)) ?? opts.apiKey;
  try {
    const res = await fetch(`${opts.baseUrl}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({
        model: req.modelId,
        prompt: promptOfTokens(req.inputTokens, req.index),
        max_tokens: req.outputTokens,
        temperature: 0,
        stream: true,
      }),
      signal,
    });
    if (!res.ok || !res.body) {
      fail(`http_${res.status}`);
      await res.body?.cancel();
      return { trace, error };
    }
    const decoder = new TextDecoder();
    let buf = "";
    let finished = false;
    for await (const part of res.body) {
      buf += decoder.decode(part as Uint8Array, { stream: true });
      for (let sep = buf.indexOf("\n\n"); sep >= 0; sep = buf.indexOf("\n\n")) {
        const event = buf.slice(0, sep);
        buf = buf.slice(sep + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") {
            finished = true;
            continue;
          }
          const json = JSON.parse(data) as { error?: { code?: string }; choices?: { text?: string; finish_reason?: string | null }[] };
          if (json.error) {
            fail(json.error.code ?? "stream_error");
            return { trace, error };
          }
          const c = json.choices?.[0];
          // One chunk per token; the final chunk only carries the finish reason.
          if (c && c.finish_reason === null) trace.tokenTimesMs.push(now());
        }
      }
    }
    trace.ok = finished;
  } catch (e) {
    fail((e as Error).name === "AbortError" ? "aborted" : "network");
  }
  return { trace, error };
}

export async function runLoad(requests: WorkloadRequest[], opts: LoadOptions): Promise<LoadResult> {
  const startMs = performance.now();
  const errors: Record<string, number> = {};
  const abort = new AbortController();
  const lastArrival = requests.length ? requests[requests.length - 1]!.arrivalMs : 0;
  const drain = setTimeout(() => abort.abort(), lastArrival + (opts.drainTimeoutMs ?? 60_000));
  const running: Promise<{ trace: RequestTrace; error: string | null }>[] = [];
  for (const r of requests) {
    const wait = r.arrivalMs - (performance.now() - startMs);
    if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    running.push(
      runOne(r, startMs, opts, abort.signal, errors).then((done) => {
        opts.onDone?.(done.trace);
        return done;
      }),
    );
  }
  const ended = await Promise.all(running);
  clearTimeout(drain);
  return { traces: ended.map((d) => d.trace), durationMs: lastArrival, errors, requestErrors: ended.map((d) => d.error) };
}
