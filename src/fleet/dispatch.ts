/**
 * One request through the router: pick a node (routing.ts), send the body, and before the
 * first byte reaches the client re-send it elsewhere on any failure; after it, pass the
 * stream through untouched and end it with a `node_failed` event if the node fails. The
 * body is kept until the answer is committed; nothing reaches the client twice.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { NodeFailedError, NoNodeAvailableError, OverloadedError, type PitcherError } from "../core/errors.ts";
import { errorBody } from "../api/errorBody.ts";
import { ROUTE_HEADER } from "./nodeServing.ts";
import { type Attempt, type Candidate, isFresh, nextStep, rankNodes, type SentRequest } from "./routing.ts";
import type { FleetView } from "./view.ts";

export interface DispatchOptions {
  /** Tries per request at most. */
  maxAttempts: number;
  /** No new try this long after the request arrived (ms): its TTFT budget. */
  budgetMs: number;
  /** How long a node that failed a call is skipped (ms). */
  excludeMs: number;
  /** How often a try checks that its node's record is still fresh (ms). */
  watchMs: number;
}

export interface DispatchCounters {
  routed(node: string): void;
  redispatched(node: string, reason: string): void;
  failed(node: string): void;
  refused(status: number): void;
}

/** Headers of the client's request that go on to the node (the body's own framing is redone). */
const PASS_HEADERS = ["authorization", "content-type", "accept", "openai-organization", "openai-project", "user-agent"];
/** Response headers that describe the node's connection, not the answer. */
const HOP_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding", "content-length"]);

export function sendError(res: ServerResponse, e: PitcherError, retryAfterS?: number): void {
  if (res.headersSent) return;
  const body = JSON.stringify(errorBody(e));
  res.writeHead(e.status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    ...(retryAfterS !== undefined ? { "retry-after": String(retryAfterS) } : {}),
  });
  res.end(body);
}

type TryResult = { kind: "answered" } | { kind: "retry"; attempt: Attempt; exclude: boolean; reason: string };

export class Dispatcher {
  readonly inFlight = new Set<SentRequest>();
  private readonly excludedUntil = new Map<string, number>();
  private readonly agent = new http.Agent({ keepAlive: true });

  constructor(
    private readonly view: FleetView,
    private readonly opts: DispatchOptions,
    private readonly count: DispatchCounters,
  ) {}

  /** Route one request whose body has been read whole. `modelId` null: any node may answer (it refuses a bad body itself). */
  async dispatch(req: IncomingMessage, res: ServerResponse, body: Buffer, modelId: string | null): Promise<void> {
    const arrivedMs = this.view.redisNowMs();
    const attempts: Attempt[] = [];
    const clientGone = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) clientGone.abort();
    });
    for (;;) {
      const snap = this.view.snapshot();
      const ranked = this.rank(snap, modelId);
      const step = nextStep(ranked, attempts, { maxAttempts: this.opts.maxAttempts, deadlineMs: arrivedMs + this.opts.budgetMs, nowMs: snap.nowMs });
      if (step.kind === "rate_limited") {
        this.count.refused(429);
        return sendError(res, new OverloadedError(`Every node serving ${modelId} is overloaded; retry in ${step.retryAfterS} s`, step.retryAfterS), step.retryAfterS);
      }
      if (step.kind === "unavailable") {
        this.count.refused(503);
        const why = attempts.length > 0 ? `${attempts.length} node(s) failed it` : `no node that serves ${modelId ?? "it"} is up`;
        return sendError(res, new NoNodeAvailableError(`No node could take this request (${why}); retry in ${step.retryAfterS} s`, step.retryAfterS), step.retryAfterS);
      }
      if (clientGone.signal.aborted) return;
      const r = await this.attempt(req, res, body, modelId ?? "", step.candidate, snap.reachable ? "view" : "fallback", clientGone.signal);
      if (r.kind === "answered") return;
      attempts.push(r.attempt);
      if (r.exclude) this.excludedUntil.set(step.candidate.nodeId, this.view.redisNowMs() + this.opts.excludeMs);
      this.count.redispatched(step.candidate.nodeId, r.reason);
    }
  }

  private rank(snap: ReturnType<FleetView["snapshot"]>, modelId: string | null): Candidate[] {
    const base = { asOfMs: snap.asOfMs, nowMs: snap.nowMs, inFlight: [...this.inFlight], excludedUntil: this.excludedUntil };
    if (modelId !== null) return rankNodes({ ...base, records: snap.records, modelId });
    // No model named: any node will do; rank as if each served a model of that name.
    const records = snap.records.map((r) => ({
      ...r,
      models: { "": Object.values(r.models)[0] ?? { state: "absent" as const, queued: 0, running: 0, waitMs: 0, loadMs: 0, requestMs: 0 } },
    }));
    return rankNodes({ ...base, records, modelId: "" });
  }

  /** Whether the node still has a fresh record (always true while Redis is unreachable: nothing to judge by). A draining node's running requests finish. */
  private stillThere(nodeId: string): boolean {
    const snap = this.view.snapshot();
    return !snap.reachable || snap.records.some((r) => r.nodeId === nodeId && isFresh(r, snap.asOfMs));
  }

  private attempt(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    modelId: string,
    node: Candidate,
    route: "view" | "fallback",
    clientGone: AbortSignal,
  ): Promise<TryResult> {
    const sent: SentRequest = { nodeId: node.nodeId, modelId, sentAtMs: this.view.redisNowMs() };
    this.inFlight.add(sent);
    const headers: Record<string, string> = { [ROUTE_HEADER]: route, "content-length": String(body.length) };
    for (const h of PASS_HEADERS) {
      const v = req.headers[h];
      if (typeof v === "string") headers[h] = v;
    }
    return new Promise<TryResult>((resolve) => {
      let settled = false;
      let committed = false;
      const done = (r: TryResult) => {
        if (settled) return;
        settled = true;
        clearInterval(watch);
        clientGone.removeEventListener("abort", onClientGone);
        this.inFlight.delete(sent);
        resolve(r);
      };
      const retry = (reason: string, exclude: boolean, attempt: Attempt = { nodeId: node.nodeId, kind: "failed" }) => done({ kind: "retry", attempt, exclude, reason });
      // After the first byte the client has part of an answer: end it cleanly, never resend.
      const failAfterCommit = (why: string) => {
        this.count.failed(node.nodeId);
        const e = new NodeFailedError(`Node ${node.nodeId} failed while answering (${why}); the answer is incomplete and can be retried`);
        if (!res.destroyed) {
          res.write(`data: ${JSON.stringify(errorBody(e))}\n\n`);
          res.end();
        }
        this.excludedUntil.set(node.nodeId, this.view.redisNowMs() + this.opts.excludeMs);
        done({ kind: "answered" });
      };
      const upstream = http.request(new URL(req.url ?? "/", node.url), { method: "POST", headers, agent: this.agent });
      const onClientGone = () => {
        upstream.destroy();
        done({ kind: "answered" });
      };
      clientGone.addEventListener("abort", onClientGone);
      // A hung node (SIGSTOP) neither answers nor closes: its record going stale is the sign.
      const watch = setInterval(() => {
        if (this.stillThere(node.nodeId)) return;
        upstream.destroy();
        if (committed) failAfterCommit("its fleet record expired");
        else retry("record_expired", true);
      }, this.opts.watchMs);
      upstream.on("error", (e: NodeJS.ErrnoException) => {
        if (committed) failAfterCommit(e.code ?? e.message);
        else retry(e.code === "ECONNREFUSED" ? "refused" : "connection", true);
      });
      upstream.on("response", (up) => {
        const status = up.statusCode ?? 502;
        const isStream = String(up.headers["content-type"] ?? "").startsWith("text/event-stream");
        if (status === 200 && isStream) {
          committed = true;
          res.writeHead(200, passHeaders(up));
          // Flush at once: the first byte reaching the client is what commits the answer.
          res.flushHeaders();
          up.on("data", (chunk: Buffer) => {
            if (!res.destroyed) res.write(chunk);
          });
          up.on("error", () => {});
          up.on("close", () => {
            if (!up.complete) return failAfterCommit("its stream was cut");
            res.end();
            this.count.routed(node.nodeId);
            done({ kind: "answered" });
          });
          return;
        }
        // Anything else is one small body: read it whole, then decide (a cut body is a failure before the first byte).
        const commit = (text: Buffer) => {
          committed = true;
          res.writeHead(status, { ...passHeaders(up), "content-length": text.length });
          res.end(text);
          this.count.routed(node.nodeId);
          done({ kind: "answered" });
        };
        const chunks: Buffer[] = [];
        up.on("data", (c: Buffer) => chunks.push(c));
        up.on("error", () => {});
        up.on("close", () => {
          if (!up.complete) return retry("connection", true);
          const text = Buffer.concat(chunks);
          const code = errorCode(text);
          // A key's limit is fleet-wide: another node would say the same (or, worse, admit past it).
          if (fleetWide(status, text)) return commit(text);
          if (status === 429) {
            const s = Number(up.headers["retry-after"]);
            return retry("rate_limited", false, { nodeId: node.nodeId, kind: "rate_limited", retryAfterS: Number.isFinite(s) && s > 0 ? s : 1 });
          }
          // A fenced node (node_unavailable) is healthy but unseen by Redis: no exclusion, so a router that goes to its last view may use it at once.
          if (status === 503) return retry(code ?? "unavailable", code !== "node_unavailable");
          if (code === "device_failed") return retry("device_failed", false);
          commit(text);
        });
      });
      upstream.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function passHeaders(up: IncomingMessage): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_HEADERS.has(k)) out[k] = v;
  return out;
}

/**
 * A refusal by the client's key, the same at every node: 429 `insufficient_quota` (its
 * budget), 429 `rate_limit_exceeded` of type `requests` or `tokens` (its rates; a node's
 * own overload is type `rate_limit_error` and does move on), 503 `limits_unavailable`.
 */
export function fleetWide(status: number, body: Buffer): boolean {
  try {
    const e = (JSON.parse(body.toString("utf8")) as { error?: { code?: unknown; type?: unknown } }).error;
    if (status === 429) return e?.code === "insufficient_quota" || (e?.code === "rate_limit_exceeded" && (e.type === "requests" || e.type === "tokens"));
    return status === 503 && e?.code === "limits_unavailable";
  } catch {
    return false;
  }
}

function errorCode(body: Buffer): string | undefined {
  try {
    const j = JSON.parse(body.toString("utf8")) as { error?: { code?: unknown } };
    return typeof j.error?.code === "string" ? j.error.code : undefined;
  } catch {
    return undefined;
  }
}
