// Browser test of the admin console, run by console_test.go (go test) against
// the real server and PostgreSQL. Plain JavaScript so it needs no build.
//
// Environment: BASE_URL, OPERATOR_TOKEN, CHROMIUM (executable), SHOT_DIR
// (screenshots), REPORT_PATH (the server's -isotest-report file, absent at
// start) and REPORT_FIXTURE (an isotest JSON report, from a real run by the
// Go test, to copy there for the last check).
import { chromium } from 'playwright-core';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const { BASE_URL, OPERATOR_TOKEN, CHROMIUM, SHOT_DIR, REPORT_PATH, REPORT_FIXTURE } = process.env;
const T = 'console-e2e';

const log = (...a) => console.log(new Date().toISOString().slice(11, 23), ...a);
const problems = [];
function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg);
}

const profile = mkdtempSync(join(tmpdir(), 'bulkhead-chromium-'));
// A fresh profile directory per run (Playwright passes it as --user-data-dir).
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1280, height: 900 },
  reducedMotion: 'reduce',
});
let failed = false;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30000); // generous: CI machines are shared and slow
  // Any console error (a CSP violation, a React warning, a failed asset) fails the run.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/the server responded with a status of (401|404|409)/.test(m.text())) problems.push('console error: ' + m.text());
  });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));

  async function axe(view) {
    // Inject axe once per document (hash navigation keeps it).
    if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(axeSource);
    const res = await page.evaluate(async () =>
      // eslint-disable-next-line no-undef
      await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }),
    );
    for (const v of res.violations) log(`axe ${view}: ${v.impact} ${v.id}: ${v.help} (${v.nodes.length} nodes: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')})`);
    const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    if (bad.length) problems.push(`axe ${view}: ${bad.length} serious/critical violations: ${bad.map((v) => v.id).join(', ')}`);
    log(`axe ${view}: ${res.passes.length} rules pass, ${res.violations.length} violations (${bad.length} serious/critical)`);
  }
  const shot = async (name) => {
    await page.screenshot({ path: join(SHOT_DIR, name + '.png'), fullPage: true, animations: 'disabled', caret: 'hide' });
    log('screenshot', name);
  };
  const focused = () => page.evaluate(() => document.activeElement?.id || document.activeElement?.textContent?.trim() || '');
  const row = (id) => page.locator(`tr[data-tenant="${id}"]`);

  // --- Sign-in: a bad token gets the API's own error; the real one gets in.
  await page.goto(BASE_URL + '/admin/');
  await page.getByRole('heading', { name: 'Sign in to the bulkhead admin console' }).waitFor();
  await axe('sign-in');
  await page.keyboard.press('Tab'); // skip nothing: the textarea is the first control
  await page.getByLabel('Operator token').focus();
  await page.keyboard.type('not-a-token');
  await page.keyboard.press('Tab');
  check((await focused()) === 'Sign in', 'Tab from the token field reaches the Sign in button, got ' + (await focused()));
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check(outline !== 'none', 'a keyboard-focused button shows a focus outline');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').filter({ hasText: '401 invalid_token: the bearer token is invalid or expired' }).waitFor();
  await shot('signin');
  await page.getByLabel('Operator token').fill(OPERATOR_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await row('acme-brands').waitFor();
  log('signed in; dashboard lists the demo tenants');

  // --- Wizard, keyboard only: identity (with a validation error first), limits, review, create.
  await page.getByRole('link', { name: 'New tenant' }).first().focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Step 1 of 3: Identity' }).waitFor();
  await page.keyboard.press('Tab');
  check((await focused()) === 'f-id', 'Tab from the page title reaches the Tenant ID field, got ' + (await focused()));
  await page.keyboard.type('Bad ID');
  await page.keyboard.press('Enter');
  await page.getByText('Use lowercase letters, digits').waitFor();
  check((await page.getByLabel('Tenant ID').getAttribute('aria-invalid')) === 'true', 'the invalid ID is marked aria-invalid');
  await axe('wizard-validation');
  await page.getByLabel('Tenant ID').focus();
  await page.keyboard.press('Control+A');
  await page.keyboard.type(T);
  await page.keyboard.press('Tab');
  await page.keyboard.type('Console E2E Brands');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Step 2 of 3: Limits and settings' }).waitFor();
  await page.keyboard.press('Tab');
  check((await focused()) === 'f-maxConns', 'step 2 starts at Max concurrent connections, got ' + (await focused()));
  await page.keyboard.type('4');
  await page.keyboard.press('Tab');
  await page.keyboard.type('5000');
  await page.keyboard.press('Tab');
  await page.keyboard.type('{"plan": "gold"}');
  await page.keyboard.press('Tab'); // Back
  await page.keyboard.press('Tab'); // Next
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Step 3 of 3: Review' }).waitFor();
  await axe('wizard-review');
  await shot('wizard-review');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  check((await focused()) === 'Create tenant', 'Tab reaches Create tenant, got ' + (await focused()));
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: `Tenant ${T} is active` }).waitFor();
  await axe('wizard-success');
  await shot('wizard');
  log('wizard created', T);

  // Failure state: the same ID again gets the API's 409, and nothing is left behind.
  await page.getByRole('button', { name: 'Create another tenant' }).click();
  await page.getByLabel('Tenant ID').fill('acme-brands');
  await page.getByRole('button', { name: 'Next: Limits and settings' }).click();
  await page.getByRole('button', { name: 'Next: Review' }).click();
  await page.getByRole('button', { name: 'Create tenant' }).click();
  await page.getByRole('heading', { name: 'Tenant acme-brands was not created' }).waitFor();
  await page.getByText(/409 conflict: .*acme-brands/).waitFor();
  await page.getByText('Nothing was created or changed').waitFor();
  await axe('wizard-failure');
  await shot('wizard-failure');

  // --- Dashboard: the new tenant in the table; filter, sort; suspend, activate, delete, restore.
  await page.getByRole('link', { name: 'Tenants' }).click();
  await row(T).waitFor();
  check((await row(T).textContent()).includes('active'), 'the new tenant is active in the table');
  await page.getByLabel('Search ID or name').fill('console');
  await page.getByText('1 of 4 tenants').waitFor();
  await page.getByLabel('Search ID or name').fill('');
  await page.getByRole('button', { name: /^Tenant ID/ }).click(); // ascending -> descending
  check((await page.locator('th[aria-sort]').first().getAttribute('aria-sort')) === 'descending', 'sorting is announced with aria-sort');
  check((await page.locator('tbody tr').first().getAttribute('data-tenant')) === 'initech-toys', 'descending by ID puts initech-toys first');
  await page.getByRole('button', { name: /^Tenant ID/ }).click();

  // Row actions and the delete dialog by keyboard: focus, Enter, type.
  await page.getByRole('button', { name: `Suspend ${T}` }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: `Tenant ${T} is now suspended.` }).waitFor();
  check((await row(T).textContent()).includes('suspended'), 'the row shows suspended');
  await page.getByRole('button', { name: `Activate ${T}` }).click();
  await page.getByRole('status').filter({ hasText: `Tenant ${T} is now active.` }).waitFor();

  await page.getByRole('button', { name: `Delete ${T}` }).focus();
  await page.keyboard.press('Enter');
  const dlg = page.getByRole('dialog', { name: `Delete tenant ${T}?` });
  await dlg.waitFor();
  await dlg.getByText('becomes unroutable at once').waitFor();
  check((await focused()) === 'retention-days', 'the modal dialog takes focus on its first field, got ' + (await focused()));
  await axe('delete-dialog');
  await shot('delete-dialog');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('7');
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: `Tenant ${T} is deleted; it can be restored until` }).waitFor();
  check((await row(T).textContent()).includes('deleted (restorable)'), 'the row shows deleted (restorable)');
  await page.getByRole('button', { name: `Restore ${T}` }).click();
  await page.getByRole('status').filter({ hasText: `Tenant ${T} is now active.` }).waitFor();

  await page.getByRole('button', { name: `Details of ${T}` }).click();
  const det = page.getByRole('dialog', { name: `Tenant ${T}` });
  await det.getByText(/exists; version \d+ of \d+/).waitFor();
  await page.keyboard.press('Escape');
  await det.waitFor({ state: 'hidden' });
  await page.getByRole('button', { name: `Suspend globex-licensing` }).click();
  await page.getByRole('status').filter({ hasText: 'Tenant globex-licensing is now suspended.' }).waitFor();
  await page.locator('.card-value').first().click({ trial: true });
  await axe('dashboard');
  await shot('dashboard');
  log('dashboard: suspend, activate, delete, restore done');

  // --- Security: mode, hardening, the labelled "no isotest report yet" state, audit trail.
  await page.getByRole('link', { name: 'Security' }).click();
  await page.getByRole('heading', { name: /Isolation mode: (SessionRole|TxLocal)/ }).waitFor();
  await page.getByTestId('no-isotest').waitFor();
  check((await page.getByTestId('no-isotest').textContent()).includes('No isotest report yet'), 'the no-report state is labelled');
  await page.locator('table', { hasText: 'revoke' }).first().waitFor();
  await page.getByLabel('Tenant', { exact: true }).fill(T);
  await page.getByRole('button', { name: 'Apply tenant and action' }).click();
  await page.getByRole('cell', { name: 'tenant.restore' }).waitFor();
  await page.getByRole('cell', { name: 'tenant.suspend' }).first().waitFor();
  await page.getByLabel('Actor contains').fill('operator:');
  await page.getByText(/events of tenant console-e2e/).waitFor();
  await axe('security');
  await shot('security');
  // The endpoint re-reads the report file: drop a report in and reload.
  copyFileSync(REPORT_FIXTURE, REPORT_PATH);
  await page.reload();
  await page.getByRole('heading', { name: 'Latest isotest report' }).waitFor();
  await page.getByRole('table', { name: /Results per attack class/ }).waitFor();
  await page.getByRole('rowheader', { name: 'role-escape' }).waitFor();
  // The verdict line reflects the real run: all held, or what got through.
  await page.getByText(/No attack got through beyond what the mode allows|attacks? leaked or could not run/).waitFor();
  await axe('security-isotest');
  await shot('security-isotest');
  log('security view checked');

  // --- Performance: chart and table from the server's metrics.
  await page.getByRole('link', { name: 'Performance' }).click();
  await page.getByRole('img', { name: 'Request latency per tenant' }).waitFor();
  await page.getByRole('rowheader', { name: 'acme-brands' }).waitFor();
  await axe('performance');
  await shot('performance');
  log('performance view checked');

  // Keyboard: the skip link is the first stop and visible when focused.
  const first = await page.evaluate(() => document.querySelector('a[href], button, input, select, textarea, [tabindex="0"]')?.textContent);
  check(first === 'Skip to content', 'the skip link is the first Tab stop, got ' + first);
  await page.locator('a.skip').focus();
  const box = await page.locator('a.skip').boundingBox();
  check(box && box.x >= 0 && box.y >= 0, 'the focused skip link is on screen');

  // Sign out clears the token.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to the bulkhead admin console' }).waitFor();
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
for (const p of problems) console.error('PROBLEM:', p);
if (failed || problems.length) process.exit(1);
log('ok');
