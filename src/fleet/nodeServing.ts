/**
 * What a fleet node changes in its API: a draining node refuses new requests with a
 * retryable `node_draining` and hands back the queued ones (answered the same way, before
 * any byte), so a router sends them elsewhere; running requests finish. A node that cannot
 * renew its record refuses work routed on a live view (`node_unavailable`).
 */
import { NodeDrainingError, NodeUnavailableError, type PitcherError } from "../core/errors.ts";
import type { ModelId, RequestId } from "../core/types.ts";
import type { EmbeddingRequest, EmbeddingResult, Generation, Health, Serving, ServingRequest } from "../runtime/Serving.ts";
import type { ServedModel } from "../core/servedModel.ts";

/** The header a router marks its requests with: `view` (routed on a live Redis view) or `fallback` (Redis unreachable for it). */
export const ROUTE_HEADER = "x-pitcher-route";

interface Tracked {
  abort: AbortController;
  handedBack: boolean;
}

export class FleetServing implements Serving {
  private readonly live = new Map<RequestId, Tracked>();
  private drainingNode = false;

  constructor(
    private readonly inner: Serving,
    /** Whether the scheduler still has the request waiting, nothing of it run. */
    private readonly isQueued: (id: RequestId) => boolean,
  ) {}

  /** The app's own 503 `shutting_down` (no Retry-After) is not what routers should see: the node answers for itself. */
  get draining(): boolean {
    return false;
  }

  models(): ServedModel[] {
    return this.inner.models();
  }

  model(id: ModelId): ServedModel | undefined {
    return this.inner.model(id);
  }

  health(): Health {
    return this.drainingNode ? { ...this.inner.health(), status: "draining" } : this.inner.health();
  }

  /** Embeddings are never handed back: they run at once, prefill only (a drain lets them finish). */
  embed(request: EmbeddingRequest): Promise<EmbeddingResult> {
    if (this.drainingNode || this.inner.draining) return Promise.reject(new NodeDrainingError());
    return this.inner.embed(request);
  }

  async generate(request: ServingRequest): Promise<Generation> {
    if (this.drainingNode || this.inner.draining) throw new NodeDrainingError();
    const tracked: Tracked = { abort: new AbortController(), handedBack: false };
    const signal = request.signal ? AbortSignal.any([request.signal, tracked.abort.signal]) : tracked.abort.signal;
    const g = await this.inner.generate({ ...request, signal });
    this.live.set(g.id, tracked);
    const handedBack = (e: unknown): unknown => (tracked.handedBack ? new NodeDrainingError() : e);
    const result = g.result.then(
      (r) => {
        if (tracked.handedBack) throw new NodeDrainingError();
        return r;
      },
      (e: unknown) => {
        throw handedBack(e);
      },
    );
    void result.finally(() => this.live.delete(g.id)).catch(() => {});
    // A streaming route reads the pieces first and may never await `result`.
    result.catch(() => {});
    // A handed-back request's stream ends with the same error as its result, whichever is read.
    async function* handBack<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
      try {
        yield* source;
      } catch (e) {
        throw handedBack(e);
      }
      if (tracked.handedBack) throw new NodeDrainingError();
    }
    return {
      ...g,
      get pieces() {
        return handBack(g.pieces);
      },
      get detailed() {
        return handBack(g.detailed);
      },
      result,
    };
  }

  /** Stop taking requests and hand back those not started: each answers 503 `node_draining`. Returns how many. */
  drain(): number {
    this.drainingNode = true;
    let n = 0;
    for (const [id, t] of this.live) {
      if (!this.isQueued(id)) continue;
      t.handedBack = true;
      t.abort.abort(new NodeDrainingError());
      n++;
    }
    return n;
  }
}

/** The node's gate, before any route: a node that cannot renew its record refuses requests routed on a live view. */
export function refuseWhenFenced(fenced: () => boolean): (req: { method: string; headers: Record<string, string | string[] | undefined> }) => PitcherError | undefined {
  return (req) => (req.method === "POST" && req.headers[ROUTE_HEADER] === "view" && fenced() ? new NodeUnavailableError() : undefined);
}
