// The Temporal UI is where an operator reads an incident: this opens it in a real browser (Debian's
// chromium, driven by playwright-core) on selfheal's own embedded dev server with its Web UI, and
// reads a waiting workflow's page as a person would: the labelled validation timer on the timeline,
// then the User Metadata tab with the workflow's summary, details and current details.
import assert from 'node:assert/strict';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { signalWithStartService } from '../../src/client/signals';
import type { Config } from '../../src/config/config';
import { DevServer } from '../../src/temporal/dev-server';
import { alertFiringSignal, stateQuery } from '../../src/workflows/definitions';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { freePorts } from '../helpers/ports';
import { startWorkers, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

const CHROMIUM = '/usr/bin/chromium';
const SERVICE = 'crypto-agent@BTC_USDT.service';
const dir = tempDir();
const profile = mkdtempSync(join(tmpdir(), 'selfheal-chromium-'));
let server: DevServer;
let native: NativeConnection;
let connection: Connection;
let workers: RunningWorkers;
let config: Config;
let browser: BrowserContext;
let page: Page;

before(
  async () => {
    try {
      accessSync(CHROMIUM, constants.X_OK);
    } catch {
      throw new Error(`${CHROMIUM} is missing: run \`npm run setup -- --tests\` (apt-get install chromium)`);
    }
    const [port, uiPort] = await freePorts(2);
    server = await DevServer.start({ dataDir: dir, port, uiPort, namespace: 'default', ephemeral: true });
    config = testConfig(
      `
temporal: { address: "127.0.0.1:${port}", dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
policy: { validationWindow: 1h }
services:
  - { name: "${SERVICE}", host: homelab }
`,
      dir,
    );
    native = await NativeConnection.connect({ address: server.address });
    workers = await startWorkers({ nativeConnection: native }, config, {
      hosts: ['homelab'],
      managers: () => new FakeManager(),
    });
    connection = await Connection.connect({ address: server.address });
    // The flags keep chromium from calling out: this machine's network is closed, and a test talks
    // only to the UI on loopback.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage();
    page.setDefaultTimeout(60_000);
  },
  { timeout: 180_000 },
);

after(
  async () => {
    await browser?.close();
    await workers?.shutdown();
    await native?.close();
    await connection?.close();
    await server?.stop();
    rmSync(profile, { recursive: true, force: true });
  },
  { timeout: 60_000 },
);

describe('the Temporal UI in a browser', () => {
  it(
    "shows a waiting workflow's summary, its labelled timer and its current details",
    { timeout: 180_000 },
    async () => {
      const client = new Client({ connection });
      const h = await signalWithStartService(client, config, 'homelab', SERVICE, alertFiringSignal, {
        alertnames: ['ServiceStalled'],
      });
      await waitFor(async () => (await h.query(stateQuery)).phase === 'validating', { what: 'validating' });

      // The link `selfheal status` and escalations give: the UI opens the run's timeline.
      await page.goto(`${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(h.workflowId)}`);
      await page.getByRole('heading', { name: h.workflowId }).waitFor();
      await page.getByText('validation window 1h').first().waitFor();

      await page.getByRole('tab', { name: 'User Metadata' }).click();
      await page.waitForURL(/\/user-metadata$/);
      // UI 2.54 (Temporal CLI 1.9.1) renders each field's Markdown in its own frame.
      const field = (id: string) => page.frameLocator(`#user-metadata-${id}`).locator('body');
      await field('summary').getByText(`${SERVICE} on homelab`).waitFor();
      assert.match(
        await field('details').innerText(),
        /selfheal approve\|skip\|pause\|resume crypto-agent@BTC_USDT\.service --host homelab/,
      );
      const current = field('current-details');
      await current.getByText('waits out the validation window').waitFor();
      const text = await current.innerText();
      assert.match(text, /crypto-agent@BTC_USDT\.service on homelab: HEALING, phase validating/);
      assert.match(text, /Incident inc-1 opened .* \(ServiceStalled\), 0 attempt\(s\)/);
      assert.match(text, /Now: waits out the validation window until \d{4}-\d\d-\d\dT/);
      assert.match(text, /approve: restart once now.*skip: drop this incident/s);
    },
  );
});
