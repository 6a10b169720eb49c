// ui.test.mjs - the web UI in a real browser (Debian's Chromium, headless)
// against a real cluster: login, live state, consoles, the create form,
// task progress, and no JavaScript errors on the way.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startCluster, launch, api, waitFor, shot, NotYet } from './lib.mjs';

let cl;
let br;
let page;

const CMDLINE = 'console=tty0 console=ttyS0 cvirt.tick=1';

before(async () => {
  cl = await startCluster(['h1', 'h2']);
  br = await launch();
  page = await br.page();
});

after(async () => {
  if (br) await br.close();
  if (cl) await cl.stop();
});

// 4xx replies a test provokes on purpose ("409 /api/v1/vms"); any other
// one is a failure, like any console error or uncaught exception.
let expectHttp = [];

// Acceptance 5: no console errors or uncaught exceptions in any test;
// and no daemon crash or sanitizer report (tests/integration/harness.py).
afterEach(async () => {
  const errs = br.errors.splice(0);
  const http = br.httpErrors.splice(0);
  const want = expectHttp;
  expectHttp = [];
  const daemons = await cl.check();
  assert.deepEqual(errs, [], 'JavaScript errors in the page');
  assert.deepEqual(http, want, 'unexpected HTTP errors in the page');
  assert.deepEqual(daemons, [], 'daemon crashes or sanitizer reports');
});

async function vmState(name) {
  return (await api(cl, 'GET', '/vms/' + name)).state;
}

test('log in with a token; the session survives a reload; a bad token is refused', async () => {
  await page.goto(cl.url + '/');
  expectHttp = ['401 /api/v1/hosts'];
  await page.locator('#token').fill('not-a-valid-token');
  await page.getByRole('button', { name: 'Log in with token' }).click();
  await page.locator('#login-error', { hasText: 'not valid' }).waitFor();
  await shot(page, 'login');
  await page.locator('#token').fill(cl.token);
  await page.getByRole('button', { name: 'Log in with token' }).click();
  await page.locator('.host-card[data-host="h1"] .badge', { hasText: 'up' }).waitFor();
  await page.locator('.host-card[data-host="h2"] .badge', { hasText: 'up' }).waitFor();
  await page.locator('#live', { hasText: 'live' }).waitFor();
  await page.reload();
  await page.locator('.host-card[data-host="h1"]').waitFor();
  assert.equal(await page.locator('#token').count(), 0, 'login form shown again after a reload');
});

test('acceptance 1: see a VM, start it, watch it run without a reload, serial console shows boot output', async () => {
  await api(cl, 'POST', '/vms', { name: 'web1', cpus: 1, memory_mib: 128, disk_mib: 64, display: 'vnc', kernel: cl.kernel, initrd: cl.initrd, cmdline: CMDLINE, host: 'h1' });
  await page.goto(cl.url + '/#/vms');
  const row = page.locator('tr[data-vm="web1"]');
  await row.locator('.badge', { hasText: 'stopped' }).waitFor();
  await page.evaluate(() => { window.__noReload = 'marker'; });
  await row.locator('a', { hasText: 'web1' }).click();
  await page.locator('h1', { hasText: 'web1' }).waitFor();
  await page.locator('#vm-actions button[data-action="start"]').click();
  await page.locator('h1 .badge', { hasText: 'running' }).waitFor({ timeout: 60000 });
  assert.equal(await page.evaluate(() => window.__noReload), 'marker', 'the page was reloaded');
  assert.equal(await vmState('web1'), 'running');
  await shot(page, 'vm-detail');
  await page.getByRole('tab', { name: 'Serial console' }).click();
  await page.locator('#serial-status', { hasText: 'connected' }).waitFor({ timeout: 20000 });
  const rows = page.locator('#serial-term .xterm-rows');
  await rows.filter({ hasText: 'cvirt-guest: init reached' }).waitFor({ timeout: 60000 });
  // Live output and input both ways: the guest's shell answers.
  await rows.filter({ hasText: 'cvirt-guest#' }).waitFor({ timeout: 30000 });
  await page.locator('#serial-term').click();
  await page.keyboard.type('echo web-$((6*7))\n');
  await rows.filter({ hasText: 'web-42' }).waitFor({ timeout: 20000 });
  await shot(page, 'serial-console');
});

test('acceptance 4: the graphical console shows the VM screen', async () => {
  await page.goto(cl.url + '/#/vms/web1');
  await page.getByRole('tab', { name: 'Display' }).click();
  await page.locator('#vnc-status', { hasText: /^connected$/ }).waitFor({ timeout: 20000 });
  const lit = await waitFor(() => page.evaluate(() => {
    const c = document.querySelector('#vnc-screen canvas');
    if (!c || c.width < 100) return 0;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 96) n++;
    return n > 500 ? n : 0;
  }), 30000, 'non-blank VNC canvas');
  assert.ok(lit > 500, 'canvas is blank');
  await shot(page, 'vnc-console');
});

test('acceptance 2: the create form shows a message next to a bad field and creates nothing', async () => {
  const before = (await api(cl, 'GET', '/vms')).map((v) => v.name).sort();
  await page.goto(cl.url + '/#/vms/new');
  await page.locator('#f-name').fill('bad name!');
  await page.locator('#f-cpus').fill('0');
  await page.locator('#f-memory_mib').fill('8');
  await page.locator('#f-kernel').fill('relative/vmlinuz');
  await page.locator('#create-submit').click();
  await page.locator('[data-field="name"] .field-error', { hasText: 'letters, digits' }).waitFor();
  await page.locator('[data-field="cpus"] .field-error', { hasText: 'between 1 and 256' }).waitFor();
  await page.locator('[data-field="memory_mib"] .field-error', { hasText: 'between 16 and 4194304' }).waitFor();
  await page.locator('[data-field="kernel"] .field-error', { hasText: 'absolute path' }).waitFor();
  assert.equal(await page.locator('#f-cpus').getAttribute('aria-invalid'), 'true');
  await shot(page, 'create-vm-errors');
  // A value only the manager can refuse: the name is taken.
  expectHttp = ['409 /api/v1/vms'];
  await page.locator('#f-name').fill('web1');
  await page.locator('#f-cpus').fill('1');
  await page.locator('#f-memory_mib').fill('128');
  await page.locator('#f-kernel').fill('');
  await page.locator('#create-submit').click();
  await page.locator('[data-field="name"] .field-error', { hasText: 'already exists' }).waitFor();
  const after = (await api(cl, 'GET', '/vms')).map((v) => v.name).sort();
  assert.deepEqual(after, before, 'a VM was created from bad input');
  // Fixed: it is created and we land on its page.
  await page.locator('#f-name').fill('web2');
  await page.locator('#f-kernel').fill(cl.kernel);
  await page.locator('#f-initrd').fill(cl.initrd);
  await page.locator('#f-cmdline').fill(CMDLINE);
  await page.locator('#f-disk_mib').fill('32');
  await page.locator('#create-submit').click();
  await page.locator('h1', { hasText: 'web2' }).waitFor();
  const vm = await api(cl, 'GET', '/vms/web2');
  assert.equal(vm.cpus, 1);
  assert.equal(vm.memory_mib, 128);
  assert.equal(vm.cmdline, CMDLINE);
  assert.equal(vm.disks.length, 1);
  assert.equal(vm.disks[0].size_mib, 32);
  assert.equal(vm.display, 'vnc', 'the form asks for a graphical console by default');
});

test('an ISO uploaded from the storage page shows a progress bar reaching 100 % and is listed', async () => {
  await page.goto(cl.url + '/#/storage');
  await page.locator('#iso-storage option').first().waitFor({ state: 'attached' });
  // 3 MiB: several progress events on the way.
  const data = Buffer.alloc(3 << 20, 7);
  await page.locator('#iso-file').setInputFiles({ name: 'ui-test.iso', mimeType: 'application/octet-stream', buffer: data });
  const seen = new Set();
  await page.locator('#iso-upload').click();
  await waitFor(async () => {
    seen.add(await page.locator('#iso-progress').evaluate((e) => e.value));
    return (await page.locator('#iso-msg').textContent()).startsWith('Uploaded ui-test.iso');
  }, 60000, 'upload finished');
  assert.equal(await page.locator('#iso-progress').evaluate((e) => e.value), 100);
  assert.equal(await page.locator('#iso-pct').textContent(), '100 %');
  await page.locator('tr[data-iso="ui-test.iso"]').waitFor();
  const list = await api(cl, 'GET', '/storage/local/isos');
  const f = list.find((x) => x.name === 'ui-test.iso');
  assert.ok(f && f.size_bytes === data.length, JSON.stringify(list));
  await shot(page, 'storage-iso-upload');
  await api(cl, 'DELETE', '/storage/local/isos/ui-test.iso');
});

test('acceptance 3: a migration started in the UI shows a progress bar reaching 100 %', async () => {
  await waitFor(async () => (await vmState('web1')) === 'running', 30000, 'web1 running');
  const from = (await api(cl, 'GET', '/vms/web1')).host;
  const to = from === 'h1' ? 'h2' : 'h1';
  await page.goto(cl.url + '/#/vms/web1');
  await page.locator('#vm-actions button[data-action="migrate"]').click();
  await page.locator('#migrate-to').selectOption(to);
  await page.getByRole('button', { name: 'Migrate', exact: true }).click();
  const bar = page.locator('footer tr', { hasText: 'vm.migrate' }).first().locator('[role="progressbar"]');
  await bar.waitFor();
  const seen = new Set();
  await waitFor(async () => {
    seen.add(await bar.getAttribute('aria-valuenow'));
    return (await bar.getAttribute('aria-valuenow')) === '100';
  }, 120000, 'migration progress 100 %');
  await page.locator('footer tr', { hasText: 'vm.migrate' }).first().locator('.badge', { hasText: 'succeeded' }).waitFor();
  await page.locator('.vm .muted a', { hasText: to }).waitFor();
  assert.equal((await api(cl, 'GET', '/vms/web1')).host, to);
  await page.goto(cl.url + '/#/tasks');
  await page.locator('tr[data-kind="vm.migrate"]').first().waitFor();
  await shot(page, 'tasks');
});

test('acceptance 3: a backup started in the UI shows a progress bar reaching 100 %; restore makes a new VM', async () => {
  await page.goto(cl.url + '/#/vms/web1');
  await page.getByRole('tab', { name: 'Backups' }).click();
  await page.locator('#backup-create').click();
  const row = page.locator('footer tr', { hasText: 'backup.create' }).first();
  await row.waitFor();
  await waitFor(async () => (await row.locator('[role="progressbar"]').getAttribute('aria-valuenow')) === '100', 120000,
    'backup progress 100 %');
  await row.locator('.badge', { hasText: 'succeeded' }).waitFor();
  const b = (await api(cl, 'GET', '/backups?vm=web1'))[0];
  const brow = page.locator('tr[data-backup="' + b.id + '"]');
  await brow.locator('td', { hasText: /^ok$/ }).waitFor({ timeout: 10000 });
  await shot(page, 'backups');
  await brow.getByRole('button', { name: 'Restore as new VM' }).click();
  await page.locator('#restore-name').fill('bad name');
  await page.locator('#restore-name-error', { hasText: 'Letters' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Restore', exact: true }).isDisabled(), true);
  await page.locator('#restore-name').fill('web1-copy');
  await page.getByRole('button', { name: 'Restore', exact: true }).click();
  await waitFor(async () => (await api(cl, 'GET', '/vms')).some((v) => v.name === 'web1-copy'), 60000, 'restored VM');
});

test('snapshots: take, revert and delete from the VM page', async () => {
  await page.goto(cl.url + '/#/vms/web2');
  await page.getByRole('tab', { name: 'Snapshots' }).click();
  await page.locator('#snapshot-create').click();
  await page.locator('#snap-name').fill('s 1');
  await page.locator('#snap-name-error', { hasText: 'Letters' }).waitFor();
  await page.locator('#snap-name').fill('s1');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.locator('tr[data-snapshot="s1"]').waitFor({ timeout: 30000 });
  await shot(page, 'snapshots');
  await page.locator('tr[data-snapshot="s1"]').getByRole('button', { name: 'Revert' }).click();
  await page.getByRole('button', { name: 'Revert', exact: true }).last().click();
  await page.locator('footer tr', { hasText: 'snapshot.revert' }).first().locator('.badge', { hasText: 'succeeded' })
    .waitFor({ timeout: 30000 });
  await page.locator('tr[data-snapshot="s1"]').getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await waitFor(async () => (await api(cl, 'GET', '/vms/web2/snapshots')).length === 0, 30000, 'snapshot deleted');
  await page.locator('tr[data-snapshot="s1"]').waitFor({ state: 'detached', timeout: 10000 });
});

test('pause, resume, force stop with confirmation, delete only after typing the name', async () => {
  await page.goto(cl.url + '/#/vms/web1');
  await page.locator('#vm-actions button[data-action="pause"]').click();
  await page.locator('h1 .badge', { hasText: 'paused' }).waitFor({ timeout: 30000 });
  await page.locator('#vm-actions button[data-action="resume"]').click();
  await page.locator('h1 .badge', { hasText: 'running' }).waitFor({ timeout: 30000 });
  // Usage charts have live figures for a running VM.
  await page.getByRole('tab', { name: 'Summary' }).click();
  await page.locator('[data-chart="cpu"] .cval', { hasText: '%' }).waitFor({ timeout: 15000 });
  await page.locator('[data-chart="mem"] .cval', { hasText: 'MiB' }).waitFor({ timeout: 15000 });
  await shot(page, 'vm-charts');
  await page.locator('#vm-actions button[data-action="force-stop"]').click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await vmState('web1'), 'running', 'cancel still stopped the VM');
  await page.locator('#vm-actions button[data-action="force-stop"]').click();
  await page.getByRole('dialog').getByRole('button', { name: 'Force stop' }).click();
  await page.locator('h1 .badge', { hasText: 'stopped' }).waitFor({ timeout: 30000 });
  await page.locator('#vm-actions button[data-action="delete"]').click();
  const del = page.getByRole('dialog').getByRole('button', { name: 'Delete' });
  assert.equal(await del.isDisabled(), true, 'delete allowed without typing the name');
  await page.locator('#confirm-name').fill('web');
  assert.equal(await del.isDisabled(), true);
  await page.locator('#confirm-name').fill('web1');
  await del.click();
  await waitFor(async () => !(await api(cl, 'GET', '/vms')).some((v) => v.name === 'web1'), 60000, 'web1 deleted');
});

test('maintenance mode from the host page', async () => {
  await page.goto(cl.url + '/#/hosts/h2');
  await page.locator('#maintenance', { hasText: 'Enter maintenance mode' }).click();
  await page.locator('h1 .badge', { hasText: 'maintenance' }).waitFor({ timeout: 60000 });
  assert.equal((await api(cl, 'GET', '/hosts/h2')).state, 'maintenance');
  await page.locator('#maintenance', { hasText: 'Leave maintenance mode' }).click();
  await page.locator('h1 .badge', { hasText: 'up' }).waitFor({ timeout: 30000 });
});

test('log in with a user name and password; logging out ends the session', async () => {
  await api(cl, 'POST', '/users', { name: 'olga', role: 'operator', password: 'correct horse 42' });
  await page.goto(cl.url + '/#/');
  await page.locator('#logout').click();
  await page.locator('#use-password').click();
  expectHttp = ['401 /api/v1/login'];
  await page.locator('#user').fill('olga');
  await page.locator('#password').fill('wrong password');
  await page.locator('#password').press('Enter');
  await page.locator('#login-error', { hasText: 'wrong user name or password' }).waitFor();
  await page.locator('#password').fill('correct horse 42');
  await page.locator('#password').press('Enter');
  await page.locator('.host-card[data-host="h1"]').waitFor();
  const tok = await page.evaluate(() => sessionStorage.getItem('cvirt.token'));
  assert.ok(tok && tok !== cl.token, 'no session token kept');
  const ok = await fetch(cl.url + '/api/v1/hosts', { headers: { Authorization: 'Bearer ' + tok } });
  assert.equal(ok.status, 200);
  await page.locator('#logout').click();
  await page.locator('#token').waitFor();
  await waitFor(async () => {
    const st = (await fetch(cl.url + '/api/v1/hosts', { headers: { Authorization: 'Bearer ' + tok } })).status;
    if (st === 200) throw new NotYet('the session still works');
    assert.equal(st, 401);
    return true;
  }, 10000, 'the session to end');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('cvirt.token')), null);
  await page.locator('#token').fill(cl.token);
  await page.locator('#token').press('Enter');
  await page.locator('.host-card[data-host="h1"]').waitFor();
});

// The RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret now, as
// an authenticator app computes it.
function totp(secret) {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret) bits += A.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000)));
  const mac = createHmac('sha1', key).update(msg).digest();
  const off = mac[mac.length - 1] & 15;
  return String((mac.readUInt32BE(off) & 0x7fffffff) % 1000000).padStart(6, '0');
}

test('a user with TOTP is asked for the one-time code', async () => {
  await api(cl, 'POST', '/users', { name: 'tess', role: 'viewer', password: 'two factors 42' });
  const { secret } = await api(cl, 'POST', '/users/tess/totp');
  await page.locator('#logout').click();
  await page.locator('#use-password').click();
  assert.equal(await page.locator('#otp').isVisible(), false);
  expectHttp = ['401 /api/v1/login'];
  await page.locator('#user').fill('tess');
  await page.locator('#password').fill('two factors 42');
  await page.locator('#password').press('Enter');
  await page.locator('#login-error', { hasText: 'one-time code' }).waitFor();
  await page.locator('#otp').fill(totp(secret));
  await page.locator('#otp').press('Enter');
  await page.locator('#whoami', { hasText: 'tess (viewer)' }).waitFor();
  await page.locator('#logout').click();
  await page.locator('#token').fill(cl.token);
  await page.locator('#token').press('Enter');
  await page.locator('#whoami', { hasText: '(admin)' }).waitFor();
});

test('a viewer sees the cluster but is offered no actions', async () => {
  await api(cl, 'POST', '/users', { name: 'vera', role: 'viewer', password: 'just looking 42' });
  await page.locator('#logout').click();
  await page.locator('#use-password').click();
  await page.locator('#user').fill('vera');
  await page.locator('#password').fill('just looking 42');
  await page.locator('#password').press('Enter');
  await page.locator('#whoami', { hasText: 'vera (viewer)' }).waitFor();
  await page.goto(cl.url + '/#/vms');
  await page.locator('tr[data-vm="web2"]').waitFor();
  assert.equal(await page.locator('#create-vm').count(), 0);
  assert.equal(await page.locator('tr[data-vm="web2"] button').count(), 0);
  await page.goto(cl.url + '/#/vms/web2');
  await page.locator('h1', { hasText: 'web2' }).waitFor();
  assert.equal(await page.locator('#vm-actions button').count(), 0);
  await page.getByRole('tab', { name: 'Serial console' }).click();
  await page.locator('#serial-status', { hasText: 'operator role' }).waitFor();
  await page.goto(cl.url + '/#/hosts/h1');
  await page.locator('h1', { hasText: 'h1' }).waitFor();
  assert.equal(await page.locator('#maintenance').isVisible(), false);
  await page.locator('#logout').click();
  await page.locator('#token').fill(cl.token);
  await page.locator('#token').press('Enter');
  await page.locator('#whoami', { hasText: '(admin)' }).waitFor();
});

test('every view renders; screenshots are kept', async () => {
  const views = [['#/', 'dashboard', '.host-card'], ['#/hosts', 'hosts', 'tr[data-host="h1"]'],
    ['#/hosts/h1', 'host-detail', '.charts'], ['#/vms', 'vms', 'tr[data-vm="web2"]'],
    ['#/storage', 'storage', 'tr[data-storage]'], ['#/networks', 'networks', 'tr[data-network="ui-blue"]']];
  await api(cl, 'POST', '/networks', { name: 'ui-blue', type: 'vxlan', subnet: '10.77.0.0/24', vni: 7777 });
  for (const [hash, name, sel] of views) {
    await page.goto(cl.url + '/' + hash);
    await page.locator(sel).first().waitFor();
    await page.waitForTimeout(300);
    await shot(page, name);
  }
  // The networks view shows each network's subnet and VNI.
  await page.goto(cl.url + '/#/networks');
  const row = page.locator('tr[data-network="ui-blue"]');
  await row.waitFor();
  assert.match(await row.innerText(), /10\.77\.0\.0\/24[\s\S]*VNI 7777/);
  // Filters narrow the list without a round trip.
  await page.goto(cl.url + '/#/vms');
  await page.locator('tr[data-vm="web1-copy"]').waitFor();
  await page.locator('#filter-name').fill('web2');
  await page.locator('tr[data-vm="web1-copy"]').waitFor({ state: 'detached' });
  await page.locator('tr[data-vm="web2"]').waitFor();
  // Logging out returns to the login form and forgets the token.
  await page.locator('#logout').click();
  await page.locator('#token').waitFor();
  await page.reload();
  await page.locator('#token').waitFor();
});
