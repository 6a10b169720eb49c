// lib.mjs - helpers for the browser tests: a throwaway cluster (cluster.py),
// Debian's Chromium driven by playwright-core, console-error tracking, and
// screenshots kept under tests/browser/artifacts/.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = process.env.CVIRT_BROWSER_ARTIFACTS || join(HERE, 'artifacts');

// Starts cluster.py; resolves with its info plus check() and stop().
// check(): the problems the harness saw in the daemons since the last
// call (sanitizer reports, crashes, daemons that died; [] when all is
// well). stop(): stops everything; throws when a daemon failed on the way
// out (a leak reported at exit, no clean exit on SIGTERM: on stderr).
export function startCluster(hosts = ['h1', 'h2']) {
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/python3', [join(HERE, 'cluster.py'), ...hosts], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    });
    const rl = createInterface({ input: p.stdout });
    let done = false;
    const replies = [];
    const exited = new Promise((r) => p.on('exit', (code, sig) => r(sig || code)));
    rl.once('line', (line) => {
      done = true;
      const info = JSON.parse(line);
      rl.on('line', (l) => { const r = replies.shift(); if (r) r(JSON.parse(l)); });
      info.check = async () => {
        const reply = new Promise((r) => replies.push(r));
        p.stdin.write('check\n');
        return (await reply).problems;
      };
      info.stop = async () => {
        p.stdin.end();
        const t = setTimeout(() => p.kill('SIGTERM'), 60000);
        const status = await exited;
        clearTimeout(t);
        if (status !== 0) throw new Error('cluster.py exited with ' + status + ': a daemon failed (its stderr says which)');
      };
      resolve(info);
    });
    p.on('exit', (code) => {
      if (!done) reject(new Error('cluster.py exited with ' + code + ' before starting'));
    });
  });
}

export async function api(cl, method, path, body) {
  const r = await fetch(cl.url + '/api/v1' + path, {
    method,
    headers: { Authorization: 'Bearer ' + cl.token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = JSON.parse(text); } catch (e) { data = text; }
  if (!r.ok) throw new Error(method + ' ' + path + ': ' + r.status + ' ' + text);
  return data;
}

// Thrown by a waitFor condition: what it waits for is not there yet.
export class NotYet extends Error {}

// Calls fn until it returns something truthy. Only "not yet" is tried
// again (a falsy value or NotYet): any other error (an API call's 5xx, a
// failed assertion) ends the wait at once, as in cvirt.py's wait_for.
export async function waitFor(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      if (!(e instanceof NotYet)) throw e;
      last = e;
    }
    if (Date.now() > end) throw new Error('timed out waiting for ' + what + ' (last: ' + last + ')');
    await new Promise((r) => setTimeout(r, 200));
  }
}

// Chromium from Debian with a fresh profile; every page's console errors
// and uncaught exceptions land in errors[].
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'cvirt-chromium.'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const errors = [];
  const httpErrors = [];
  const watch = (page) => {
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      // Chromium logs every 4xx reply; tests that provoke one say so.
      const st = m.text().match(/^Failed to load resource: the server responded with a status of (4\d\d)/);
      if (st) httpErrors.push(st[1] + ' ' + new URL(m.location().url).pathname);
      else errors.push('console: ' + m.text() + ' @ ' + JSON.stringify(m.location()));
    });
    page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  };
  ctx.pages().forEach(watch);
  ctx.on('page', watch);
  mkdirSync(ARTIFACTS, { recursive: true });
  return {
    ctx, errors, httpErrors,
    async page() {
      return ctx.pages()[0] || ctx.newPage();
    },
    async close() {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, name + '.png') });
}
