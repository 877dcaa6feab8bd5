import { strict as assert } from 'node:assert';
import { parseUsers } from '../../src/comx/users-list';

describe('comx/users-list', () => {
  it('reads the users list without the voicemail PIN unless asked', async () => {
    const text = 'Extension,Name,PIN\r\n200,Reception,1234\r\n201,"Smith, J",9999\r\n202\r\n';
    const { users, malformed } = await parseUsers(text);
    assert.deepEqual(users.map((u) => [u.extension, u.name, 'pin' in u]), [['200', 'Reception', false], ['201', 'Smith, J', false]]);
    assert.deepEqual(malformed.map((m) => m.line), [4]);
    const withPin = await parseUsers('200,Reception,1234\n', true);
    assert.equal(withPin.users[0].pin, '1234');
  });

  it('reports a list it cannot read at all instead of throwing, and never puts a PIN in a malformed line unless asked', async () => {
    const broken = await parseUsers('200,"Reception\n201,x\n');
    assert.deepEqual(broken.users, []);
    assert.deepEqual(broken.malformed.map((m) => [m.line, m.text]), [[2, '']]);
    assert.match(broken.malformed[0].reason, /Quote Not Closed/);
    const { malformed } = await parseUsers('200,Reception,1234\n,Nobody,5555\n');
    assert.deepEqual(malformed.map((m) => [m.line, m.text]), [[2, ',Nobody']]);
    assert.equal((await parseUsers('200,Reception,1234\n,Nobody,5555\n', true)).malformed[0].text, ',Nobody,5555');
  });
});
