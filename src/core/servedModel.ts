/** A model of the serving catalog: its file, what its metadata says, and its profile. */
import type { ModelProfile } from "./types.ts";

export interface ServedModel {
  id: string;
  path: string;
  /** Identifies the file's content; KV state files are checked against it. */
  fingerprint: string;
  fileBytes: number;
  architecture: string;
  trainedContextTokens: number;
  vocabularySize: number;
  /** Weight format from general.file_type (e.g. Q8_0, F16), when the file says. */
  fileType?: string;
  expertCount?: number;
  standIn: boolean;
  /**
   * The model embeds (`/v1/embeddings`) and does nothing else: it is loaded as an embedding
   * context, and chat or completions on it are refused.
   */
  embedding?: boolean;
  description: string;
  profile: ModelProfile;
}
