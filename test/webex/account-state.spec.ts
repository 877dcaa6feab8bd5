import { strict as assert } from 'node:assert';
import { restoreTokens, restoreHost, hostSnapshot } from '../../src/webex/account-state';
import { StateShapeError } from '../../src/common/persist';

describe('webex/account-state', () => {
  const tokens = { accessToken: 'AT-1', expiresAt: 1_800_000_000_000, refreshToken: 'RT-2', refreshExpiresAt: 1_900_000_000_000, lineage: ['h1', 'h2'], updatedAt: '2026-11-23T12:00:00.000Z' };
  const host = { for: 'https://analytics-calling.webexapis.com', url: 'https://analytics-calling-eu.webexapis.com' };

  it('token file: nothing saved is a first start; a saved set comes back as it was (access token only too)', () => {
    assert.deepEqual(restoreTokens(undefined), { version: 1, tokens: null });
    assert.deepEqual(restoreTokens({ version: 1, tokens }), { version: 1, tokens });
    assert.deepEqual(restoreTokens({ version: 1, tokens: null }), { version: 1, tokens: null });
    const fixed = { accessToken: 'AT', expiresAt: 0, lineage: [], updatedAt: 'x' };
    assert.deepEqual(restoreTokens({ version: 1, tokens: fixed }).tokens, fixed);
  });

  const badTokens: Array<[string, unknown, RegExp]> = [
    ['null', null, /not an object/],
    ['a list', [tokens], /not an object/],
    ['no version', { tokens }, /unknown token file version undefined/],
    ['another version', { version: 2, tokens }, /unknown token file version 2/],
    ['an unknown field', { version: 1, tokens, host }, /unknown field "host"/],
    ['tokens as text', { version: 1, tokens: 'AT-1' }, /the saved tokens is not an object/],
    ['an access token that is not text', { version: 1, tokens: { ...tokens, accessToken: 5 } }, /accessToken is not text/],
    ['an expiry that is not a number', { version: 1, tokens: { ...tokens, expiresAt: '2026' } }, /expiresAt is not a number/],
    ['a refresh token that is not text', { version: 1, tokens: { ...tokens, refreshToken: null } }, /refreshToken is not text/],
    ['no lineage', { version: 1, tokens: { ...tokens, lineage: undefined } }, /lineage is not a list/],
    ['a lineage of numbers', { version: 1, tokens: { ...tokens, lineage: [1] } }, /lineage is not a list/],
    ['a token field nobody writes', { version: 1, tokens: { ...tokens, scope: 'x' } }, /unknown field "scope"/],
  ];
  for (const [what, saved, message] of badTokens) {
    it(`token file with ${what}: StateShapeError`, () => {
      assert.throws(() => restoreTokens(saved), (e: unknown) => e instanceof StateShapeError && message.test((e as Error).message));
    });
  }

  it('region store: version 2, and what 0.1.0 kept there (tokens to move)', () => {
    assert.deepEqual(restoreHost(undefined), { host: null, legacyTokens: null });
    assert.deepEqual(restoreHost({ version: 2, host }), { host, legacyTokens: null });
    assert.deepEqual(restoreHost({ version: 2, host: null }), { host: null, legacyTokens: null });
    assert.deepEqual(restoreHost({ tokens, host }), { host, legacyTokens: tokens });
    assert.deepEqual(restoreHost({ tokens }), { host: null, legacyTokens: tokens });
    assert.deepEqual(restoreHost({}), { host: null, legacyTokens: null });
  });

  it('writes back no tokens once they were moved, and keeps them until then', () => {
    assert.deepEqual(hostSnapshot({ host, legacyTokens: null }), { version: 2, host });
    assert.deepEqual(hostSnapshot({ host: null, legacyTokens: tokens }), { version: 2, host: null, tokens });
    assert.deepEqual(restoreHost(hostSnapshot({ host: null, legacyTokens: tokens })).legacyTokens, tokens, 'read again at the next start');
  });

  const badHost: Array<[string, unknown, RegExp]> = [
    ['null', null, /not an object/],
    ['text', 'https://x', /not an object/],
    ['another version', { version: 3, host }, /unknown account state version 3/],
    ['a host without its base', { version: 2, host: { url: host.url } }, /is not \{for, url\}/],
    ['a host that is not a URL', { version: 2, host: { ...host, url: 'ftp://x' } }, /is not \{for, url\}/],
    ['old tokens of the wrong shape', { tokens: { accessToken: 1 } }, /tokens saved by an older version: accessToken is not text/],
    ['an unknown field', { version: 2, host, cursor: 1 }, /unknown field "cursor"/],
  ];
  for (const [what, saved, message] of badHost) {
    it(`region store with ${what}: StateShapeError`, () => {
      assert.throws(() => restoreHost(saved), (e: unknown) => e instanceof StateShapeError && message.test((e as Error).message));
    });
  }
});
