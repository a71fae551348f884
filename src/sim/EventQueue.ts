/**
 * Events ordered by (time, kind rank, insertion sequence): runs repeat exactly.
 */
export interface SimEvent<T> {
  timeMs: number;
  rank: number;
  seq: number;
  payload: T;
}

export class EventQueue<T> {
  private heap: SimEvent<T>[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(timeMs: number, rank: number, payload: T): void {
    const e = { timeMs, rank, seq: this.seq++, payload };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): SimEvent<T> | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before<T>(a: SimEvent<T>, b: SimEvent<T>): boolean {
  return a.timeMs !== b.timeMs ? a.timeMs < b.timeMs : a.rank !== b.rank ? a.rank < b.rank : a.seq < b.seq;
}
