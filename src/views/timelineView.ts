/** The shared timeline view (see timelineView.browser.js), as script text to inline in a page. */
import fs from "node:fs";

let cached: string | undefined;

export function timelineScript(): string {
  cached ??= fs.readFileSync(new URL("./timelineView.browser.js", import.meta.url), "utf8");
  return cached;
}
