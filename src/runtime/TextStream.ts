/**
 * Turns output tokens into text deltas: holds back an incomplete UTF-8 character and any
 * tail that could still become a stop string, and cuts the text at the first stop string.
 */
export interface Detokenizer {
  /** Text of `tokens`, given the tokens before them (a leading space depends on them). */
  detokenize(tokens: number[], lastTokens?: number[]): string;
}

/** Bytes of one UTF-8 character can span up to four tokens. */
const MAX_PENDING = 4;

export class TextStream {
  private readonly tokens: number[] = [];
  private pending: number[] = [];
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
    // Detokenize only the new token (with a little context), not the whole output: the cost
    // per token stays constant. A token ending in the middle of a character waits for the rest.
    this.pending.push(token);
    const piece = this.detok.detokenize(this.pending, this.tokens.slice(-MAX_PENDING));
    if (piece.endsWith("\ufffd") && this.pending.length < MAX_PENDING) return "";
    this.tokens.push(...this.pending);
    this.pending = [];
    this.text += piece;
    let visible = this.text;
    for (const s of this.stop) {
      const at = visible.indexOf(s, Math.max(0, this.emitted - s.length));
      if (at >= 0) {
        visible = visible.slice(0, at);
        this.stopped = true;
      }
    }
    if (this.stopped) return this.take(visible);
    let safeEnd = visible.length;
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
    if (this.pending.length > 0) {
      this.text += this.detok.detokenize(this.pending, this.tokens.slice(-MAX_PENDING));
      this.pending = [];
    }
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
