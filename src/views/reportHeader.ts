/**
 * The setup block at the top of the report pages (simulate, plan, bench): what was run,
 * against what, with which SLOs, so a report read later (or by someone else) says what its
 * numbers mean. Plain strings: the composition roots describe; the page only lays out.
 */

/** One labelled line of the header, e.g. ["policy", "token"]. */
export type ReportSetup = [label: string, value: string][];

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

export function reportHeaderHtml(setup: ReportSetup): string {
  if (setup.length === 0) return "";
  return `<dl id="setup" style="display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0 16px;padding:10px 14px;background:#f6f7f9;border-radius:6px">${setup
    .map(([k, v]) => `<dt style="font-weight:600;color:#444" data-setup="${esc(k)}">${esc(k)}</dt><dd style="margin:0">${esc(v)}</dd>`)
    .join("")}</dl>`;
}

/**
 * Milliseconds as people read them: seconds from 1 s, whole ms from 10 ms, one decimal below.
 * The pages carry the same rule in their scripts (fmtMsJs) for numbers drawn in the browser.
 */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (Math.abs(ms) >= 1000) return `${+(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)} s`;
  if (Math.abs(ms) >= 10) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1)} ms`;
}

/** formatMs for the page scripts: "ms" numbers without the unit (the column says it). */
export const fmtMsJs = `const fmtMs = (v) => (typeof v !== "number" || !isFinite(v) ? String(v) : Math.abs(v) >= 10 ? String(Math.round(v)) : v.toFixed(1));
const fmtRatio = (v) => (typeof v === "number" ? v.toFixed(3) : String(v));`;
