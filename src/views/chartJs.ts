/** Chart.js's browser bundle, to inline into self-contained pages (no CDN). */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

let cached: string | undefined;

export function chartJs(): string {
  // Its `exports` map hides the UMD file: find it beside the entry.
  cached ??= fs.readFileSync(path.join(path.dirname(createRequire(import.meta.url).resolve("chart.js")), "chart.umd.min.js"), "utf8");
  return cached;
}
