#!/usr/bin/env node
/**
 * npm run demo:post: posts a recorded CMS batch (six records of one call) to the demo receiver of
 * `npm start`, as a call bridge would: http://localhost:$PORT/cdr (PORT as for npm start, default 1880).
 * Each run uses a new session id, so the records are new each time; the receiver drops a batch it has
 * already taken (a CMS resend), which is why posting the same file twice shows nothing the second time.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { randomUUID } = require('node:crypto');

const port = process.env.PORT || '1880';
const url = process.argv[2] || `http://localhost:${port}/cdr`;
const body = fs.readFileSync(path.join(__dirname, '..', 'test', 'fixtures', 'cms', 'cdr-receiver-db-call.xml'), 'utf8')
  .replace(/session="[^"]*"/, `session="${randomUUID()}"`);

fetch(url, { method: 'POST', headers: { 'content-type': 'text/xml' }, body }).then(
  async (res) => {
    const text = (await res.text()).trim();
    console.log(`POST ${url}: HTTP ${res.status}${text ? ` ${text}` : ''}${res.ok ? ' (6 records: see the Debug sidebar)' : ''}`);
    process.exitCode = res.ok ? 0 : 1;
  },
  (err) => {
    console.error(`POST ${url}: ${err.cause?.code ?? err.cause?.errors?.[0]?.code ?? err.message} (is npm start running on port ${port}?)`);
    process.exitCode = 1;
  },
);
