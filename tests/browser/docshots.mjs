// docshots.mjs - refreshes docs/ui/*.png from the browser tests' artifacts,
// scaled down to keep the repository small: node tests/browser/docshots.mjs
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launch, ARTIFACTS } from './lib.mjs';

const NAMES = ['login', 'dashboard', 'hosts', 'host-detail', 'vms', 'vm-detail', 'vm-charts',
  'create-vm-errors', 'serial-console', 'vnc-console', 'snapshots', 'backups', 'tasks', 'storage', 'networks'];
const OUT = join(import.meta.dirname || new URL('.', import.meta.url).pathname, '..', '..', 'docs', 'ui');
const SCALE = 0.6;

mkdirSync(OUT, { recursive: true });
const br = await launch();
const page = await br.page();
for (const n of NAMES) {
  const b64 = readFileSync(join(ARTIFACTS, n + '.png')).toString('base64');
  await page.setContent('<body style="margin:0"><img id="i" src="data:image/png;base64,' + b64 + '"></body>');
  const size = await page.evaluate(async (s) => {
    const i = document.getElementById('i');
    await i.decode();
    i.style.width = Math.round(i.naturalWidth * s) + 'px';
    return [i.width, i.height];
  }, SCALE);
  await page.setViewportSize({ width: size[0], height: size[1] });
  await page.locator('#i').screenshot({ path: join(OUT, n + '.png') });
}
await br.close();
