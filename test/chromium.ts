// Where Chromium is for browser tests (the same lookup as dashboard.test.ts's, importable
// without running that file's tests).
import fs from "node:fs";

/** Debian's package installs /usr/bin/chromium; PITCHER_CHROMIUM points elsewhere. */
export function chromiumPath(): string {
  const candidates = [process.env.PITCHER_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"].filter((p): p is string => !!p);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`No Chromium found (tried ${candidates.join(", ")}); install Debian's chromium package (.ci/run does) or set PITCHER_CHROMIUM`);
  return found;
}
