// charts.js - small canvas line charts of the last minutes (CPU, memory,
// disk and network I/O), fed with the history from GET .../stats and then
// with each live sample from the stream.
import { h, mib, rate } from './ui.js';

const WINDOW_MS = 5 * 60 * 1000;

const DEFS = [
  { key: 'cpu', title: 'CPU', lines: [['cpu_pct', 'CPU']], max: 100, fmt: (v) => v.toFixed(0) + ' %' },
  { key: 'mem', title: 'Memory', lines: [['mem_mib', 'used']], fmt: mib },
  { key: 'disk', title: 'Disk I/O', lines: [['disk_read_bps', 'read'], ['disk_write_bps', 'write']], fmt: rate },
  { key: 'net', title: 'Network', lines: [['net_rx_bps', 'in'], ['net_tx_bps', 'out']], fmt: rate },
];
const COLORS = ['#2f6fb2', '#d9822b'];

function drawChart(c, def, samples) {
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth || 260;
  const ht = c.clientHeight || 90;
  if (c.width !== w * dpr) c.width = w * dpr;
  if (c.height !== ht * dpr) c.height = ht * dpr;
  const g = c.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, ht);
  const now = Date.now();
  let max = def.max || 0;
  if (!def.max) {
    for (const s of samples) for (const [k] of def.lines) if (s[k] > max) max = s[k];
    max = max > 0 ? max * 1.2 : 1;
  }
  g.strokeStyle = '#ddd';
  g.lineWidth = 1;
  for (let i = 1; i < 4; i++) {
    g.beginPath();
    g.moveTo(0, ht * i / 4);
    g.lineTo(w, ht * i / 4);
    g.stroke();
  }
  def.lines.forEach(([k], i) => {
    g.strokeStyle = COLORS[i];
    g.lineWidth = 1.5;
    g.beginPath();
    let pen = false;
    for (const s of samples) {
      const v = s[k];
      if (v === null || v === undefined) {
        pen = false;
        continue;
      }
      const x = w - (now - s.t) / WINDOW_MS * w;
      const y = ht - Math.min(v, max) / max * (ht - 2) - 1;
      if (pen) g.lineTo(x, y);
      else g.moveTo(x, y);
      pen = true;
    }
    g.stroke();
  });
}

// A set of charts for one host or VM. push(sample) adds a live sample.
export function chartSet(label) {
  let samples = [];
  const parts = DEFS.map((def) => {
    const canvas = h('canvas', { class: 'chart', role: 'img', 'aria-label': label + ' ' + def.title + ' over the last 5 minutes' });
    const value = h('span', { class: 'cval' }, '—');
    const el = h('figure', { class: 'chartbox', dataset: { chart: def.key } },
      h('figcaption', {}, def.title, ' ', value,
        h('span', { class: 'legend' }, def.lines.length > 1 ? def.lines.map(([, n], i) => h('i', { style: 'color:' + COLORS[i] }, ' ' + n)) : '')),
      canvas);
    return { def, canvas, value, el };
  });
  function redraw() {
    const cut = Date.now() - WINDOW_MS;
    samples = samples.filter((s) => s.t >= cut);
    const last = samples[samples.length - 1];
    for (const p of parts) {
      drawChart(p.canvas, p.def, samples);
      p.value.textContent = last ? p.def.lines.map(([k]) => (last[k] === null ? '—' : p.def.fmt(last[k]))).join(' / ') : '—';
    }
  }
  return {
    el: h('div', { class: 'charts' }, parts.map((p) => p.el)),
    load(list) {
      samples = list.slice();
      redraw();
    },
    push(s) {
      if (!s) return;
      if (samples.length && samples[samples.length - 1].t >= s.t) return;
      samples.push(s);
      redraw();
    },
    redraw,
  };
}
