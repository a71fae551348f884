// Where Chromium is for the browser tests (a module of its own: importing a test file would run its tests).
import fs from "node:fs";

/** Debian's package installs /usr/bin/chromium; PITCHER_CHROMIUM points elsewhere. */
export function chromiumPath(): string {
  const candidates = [process.env.PITCHER_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"].filter((p): p is string => !!p);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`No Chromium found (tried ${candidates.join(", ")}); install Debian's chromium package (.ci/run does) or set PITCHER_CHROMIUM`);
  return found;
}

/** Chromium as every browser test launches it (headless, in containers without a sandbox or a GPU). */
export function chromiumLaunchOptions(): { executablePath: string; args: string[] } {
  return { executablePath: chromiumPath(), args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] };
}
