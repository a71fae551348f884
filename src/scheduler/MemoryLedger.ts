/**
 * One owner for a device's memory: resident weights and device-tier KV of every model.
 * An allocation that does not fit returns false and changes nothing. The residency mechanism
 * asks `fits` and makes room (swap out, evict) before it allocates, so a refusal there is a
 * broken invariant it reports. Pure bookkeeping, no I/O.
 */
export type AllocationKind = "weights" | "kv";

export class MemoryLedger {
  private readonly allocations = new Map<string, { kind: AllocationKind; bytes: number }>();
  private used = 0;

  constructor(readonly capacityBytes: number) {}

  get usedBytes(): number {
    return this.used;
  }

  get freeBytes(): number {
    return this.capacityBytes - this.used;
  }

  bytesOf(kind: AllocationKind): number {
    let n = 0;
    for (const a of this.allocations.values()) if (a.kind === kind) n += a.bytes;
    return n;
  }

  fits(bytes: number): boolean {
    return this.used + bytes <= this.capacityBytes;
  }

  has(key: string): boolean {
    return this.allocations.has(key);
  }

  /** Allocate `bytes` under `key`; false (and no change) when it does not fit or the key is taken. */
  allocate(key: string, kind: AllocationKind, bytes: number): boolean {
    if (this.allocations.has(key) || !this.fits(bytes)) return false;
    this.allocations.set(key, { kind, bytes });
    this.used += bytes;
    return true;
  }

  /** Grow or shrink an existing allocation; false when growing does not fit. */
  resize(key: string, bytes: number): boolean {
    const a = this.allocations.get(key);
    if (!a) return false;
    if (bytes > a.bytes && !this.fits(bytes - a.bytes)) return false;
    this.used += bytes - a.bytes;
    a.bytes = bytes;
    return true;
  }

  free(key: string): void {
    const a = this.allocations.get(key);
    if (!a) return;
    this.used -= a.bytes;
    this.allocations.delete(key);
  }

  clear(): void {
    this.allocations.clear();
    this.used = 0;
  }
}
