/**
 * Turns output tokens into text deltas: holds back an incomplete UTF-8 character and any
 * tail that could still become a stop string, and cuts the text at the first stop string.
 */
export interface Detokenizer {
  detokenize(tokens: number[]): string;
}

export class TextStream {
  private readonly tokens: number[] = [];
  private emitted = 0;
  private text = "";
  stopped = false;

  constructor(
    private readonly detok: Detokenizer,
    private readonly stop: string[],
  ) {}

  /** Add a token; returns the new text that is safe to send. */
  push(token: number): string {
    if (this.stopped) return "";
    this.tokens.push(token);
    this.text = this.detok.detokenize(this.tokens);
    let visible = this.text;
    for (const s of this.stop) {
      const at = visible.indexOf(s, Math.max(0, this.emitted - s.length));
      if (at >= 0) {
        visible = visible.slice(0, at);
        this.stopped = true;
      }
    }
    if (this.stopped) return this.take(visible);
    // An incomplete multi-byte character shows as U+FFFD at the end until its last byte arrives.
    let safeEnd = visible.length;
    while (safeEnd > this.emitted && visible.charCodeAt(safeEnd - 1) === 0xfffd && visible.length - safeEnd < 3) safeEnd--;
    for (const s of this.stop) {
      for (let k = Math.min(s.length - 1, visible.length); k > 0; k--) {
        if (visible.endsWith(s.slice(0, k))) {
          safeEnd = Math.min(safeEnd, visible.length - k);
          break;
        }
      }
    }
    return this.take(visible.slice(0, Math.max(safeEnd, this.emitted)));
  }

  /** At the end: whatever was held back (unless a stop string cut it). */
  flush(): string {
    if (this.stopped) return "";
    return this.take(this.text);
  }

  /** All text sent so far. */
  get sent(): string {
    return this.text.slice(0, this.emitted);
  }

  private take(upTo: string): string {
    const delta = upTo.slice(this.emitted);
    this.emitted = upTo.length;
    return delta;
  }
}
