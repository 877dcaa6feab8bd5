import { strict as assert } from 'node:assert';
import { HttpStatusError } from '../../src/common/http';
import { ComxAuthError, ComxRequestError } from '../../src/comx/client';
import { describeFailure } from '../../src/comx/failures';
import { FetchError } from '../../src/comx/fetch';
import { RecordingTooLargeError } from '../../src/comx/recording';
import { ArchiveError } from '../../src/comx/ziprec';
import { translate } from '../helpers/red';

describe('comx/failures', () => {
  const cases: [string, unknown, string, Record<string, unknown>][] = [
    ['a refused login', new ComxAuthError(401), 'auth', { status: 401 }],
    ['an HTTP error asked once (a 404)', new HttpStatusError(404, 'x', {}, 'gone'), 'http', { status: 404, detail: 'gone', attempts: 1 }],
    ['an HTTP error after the retries', Object.assign(new HttpStatusError(503, 'x', {}, 'busy'.repeat(100)), { attempts: 4 }), 'httpRetried', { status: 503, detail: 'busy'.repeat(50), attempts: 4 }],
    ['a broken zip', new ArchiveError('CRC-32 mismatch'), 'zip', { error: 'CRC-32 mismatch' }],
    ['a recording over the limit', new RecordingTooLargeError(20 * 1024 * 1024), 'tooLarge', { limit: '20,971,520' }],
    ['a request that cannot be built', new ComxRequestError('not a time: x'), 'request', { error: 'not a time: x' }],
    ['a reset connection', Object.assign(new Error('other side closed'), { code: 'ECONNRESET', attempts: 4 }), 'network', { error: 'other side closed', attempts: 4 }],
    ['a timeout named only in the message', new Error('Headers Timeout Error'), 'network', { error: 'Headers Timeout Error', attempts: 1 }],
    ['a connection broken after CDRs went out', new FetchError('broken', { sent: '133', error: 'terminated' }), 'broken', { sent: '133', error: 'terminated' }],
    ['an unknown mode', new FetchError('mode', { mode: 'x' }), 'mode', { mode: 'x' }],
    ['a web page', new FetchError('html'), 'html', {}],
  ];
  for (const [what, err, key, vars] of cases) {
    it(`${what}: errors.${key}, a key of the node's catalog`, () => {
      assert.deepEqual(describeFailure(err), { key, vars });
      assert.doesNotThrow(() => translate(`comx-cdr-fetch.errors.${key}`, vars));
    });
  }

  it('every FetchError code has its text in the catalog', () => {
    for (const code of ['mode', 'format', 'rawNeedsOne', 'noId', 'noStart', 'html', 'broken'] as const) assert.doesNotThrow(() => translate(`comx-cdr-fetch.errors.${code}`), code);
  });

  it('passes anything else on as it is', () => {
    assert.equal(describeFailure(new TypeError('a bug')), null);
    assert.equal(describeFailure('text'), null);
    assert.equal(describeFailure(undefined), null);
  });
});
