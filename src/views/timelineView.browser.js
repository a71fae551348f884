// Per-device timeline of what ran when, coloured by model: the live dashboard and the
// simulator's report both draw it with this script (inlined into their pages; no deps).
// pitcherTimeline(container, { devices, segments, fromMs, toMs, models })
//   devices:  device ids (strings), one row each
//   segments: { device, kind, model?, startMs, endMs, requests? }
//   models:   every model id, in a stable order (fixes each model's colour)
// Each segment is an SVG <rect> with data-device, data-kind and data-model attributes.
// Also: pitcherColour(models, model), pitcherEscape(text) for HTML.
(() => {
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  function colour(models, m) {
    const i = models.indexOf(m);
    return i < 0 ? "#999" : "hsl(" + ((i * 137.508) % 360).toFixed(1) + ",62%," + (i % 2 ? 42 : 56) + "%)";
  }
  function tickStep(spanS) {
    const steps = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200];
    for (const s of steps) if (spanS / s <= 10) return s;
    return steps[steps.length - 1];
  }
  const KINDS = [
    ["decode", "decode"],
    ["prefill", "prefill (pale)"],
    ["load", "loading (dark, model outline)"],
    ["swapOut", "KV swap out / in (grey, half height)"],
    ["evict", "evict (black)"],
    ["crash", "crash (red)"],
  ];
  function legend(models) {
    const sw = (c, extra) => '<span style="display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;vertical-align:-2px;background:' + c + ";" + (extra || "") + '"></span>';
    return (
      '<div class="tl-legend" style="font:12px system-ui,sans-serif;margin:4px 0">' +
      models.map((m) => sw(colour(models, m)) + '<span data-legend-model="' + esc(m) + '">' + esc(m) + "</span>").join("") +
      '</div><div style="font:12px system-ui,sans-serif;color:#555;margin:2px 0 6px">' +
      KINDS.map(([, label]) => label).join(" · ") +
      "</div>"
    );
  }
  function draw(container, o) {
    const width = Math.max(400, container.clientWidth || 960);
    const labelW = 90,
      rowH = 24,
      axisH = 22,
      right = 24;
    const from = o.fromMs,
      to = Math.max(o.toMs, o.fromMs + 1);
    const plotW = width - labelW - right;
    const x = (t) => labelW + ((Math.min(Math.max(t, from), to) - from) / (to - from)) * plotW;
    const rowOf = new Map(o.devices.map((d, i) => [String(d), i]));
    const height = rowH * o.devices.length + axisH;
    const out = [
      '<svg xmlns="http://www.w3.org/2000/svg" class="pitcher-timeline" width="' + width + '" height="' + height + '" style="display:block;font:11px system-ui,sans-serif">',
    ];
    o.devices.forEach((d, i) => {
      out.push('<rect x="' + labelW + '" y="' + (i * rowH + 1) + '" width="' + plotW + '" height="' + (rowH - 2) + '" fill="#f3f3f3"/>');
      out.push('<text x="4" y="' + (i * rowH + rowH / 2 + 4) + '">' + esc(d) + "</text>");
    });
    for (const s of o.segments) {
      if (s.endMs < from || s.startMs > to) continue;
      const row = rowOf.get(String(s.device));
      if (row === undefined) continue;
      const x0 = x(s.startMs),
        w = Math.max(1, x(s.endMs) - x0);
      let y = row * rowH + 2,
        h = rowH - 4,
        fill = colour(o.models, s.model),
        extra = "";
      if (s.kind === "prefill") extra = ' fill-opacity="0.5" stroke="' + fill + '" stroke-width="1"';
      else if (s.kind === "load") {
        extra = ' stroke="' + fill + '" stroke-width="2"';
        fill = "#333";
      } else if (s.kind === "swapOut" || s.kind === "swapIn") {
        fill = "#8a8a8a";
        y += h / 4;
        h = h / 2;
      } else if (s.kind === "evict") fill = "#000";
      else if (s.kind === "crash") fill = "#d00";
      const title =
        s.kind + (s.model ? " " + s.model : "") + (s.requests ? " (" + s.requests + " req)" : "") + ": " + (s.startMs / 1000).toFixed(3) + "–" + (s.endMs / 1000).toFixed(3) + " s";
      out.push(
        '<rect x="' +
          x0.toFixed(1) +
          '" y="' +
          y +
          '" width="' +
          w.toFixed(1) +
          '" height="' +
          h +
          '" fill="' +
          fill +
          '"' +
          extra +
          ' data-device="' +
          esc(s.device) +
          '" data-kind="' +
          esc(s.kind) +
          '" data-model="' +
          esc(s.model || "") +
          '"><title>' +
          esc(title) +
          "</title></rect>",
      );
    }
    const spanS = (to - from) / 1000,
      step = tickStep(spanS),
      axisY = rowH * o.devices.length;
    for (let t = Math.ceil(from / 1000 / step) * step; t <= to / 1000 + 1e-9; t += step) {
      const tx = x(t * 1000);
      out.push('<line x1="' + tx + '" x2="' + tx + '" y1="0" y2="' + (axisY + 4) + '" stroke="#0002"/>');
      out.push('<text x="' + tx + '" y="' + (axisY + 16) + '" text-anchor="middle">' + +t.toFixed(2) + " s</text>");
    }
    out.push("</svg>");
    container.innerHTML = (o.legend === false ? "" : legend(o.models)) + out.join("");
  }
  window.pitcherTimeline = draw;
  window.pitcherColour = colour;
  window.pitcherEscape = esc;
})();
