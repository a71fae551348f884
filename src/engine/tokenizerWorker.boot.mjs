// The tokenizer pool's worker entry: worker threads do not inherit the main thread's tsx
// registration, so register it here before loading the TypeScript worker.
import { register } from "tsx/esm/api";

register();
const worker = await import("./tokenizerWorker.ts");
export default worker.default;
