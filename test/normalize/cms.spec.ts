import { strict as assert } from 'node:assert';
import { CmsLegJoiner, CMS_LIMITS, normalizeMessage, validateCdr } from '../../src/normalize';
import { parseCdrDocument } from '../../src/cms/parse';
import { mividasPosts, shared } from '../helpers/fixtures';
import { runCms, cmsMessage, opts, OBSERVED } from './helpers';

// Expected rows written by hand from specs/cms.md §3 and peers.md §5.3, reading the fixture XML.
const CALL = 'f54bfbc3-c11e-47a6-a918-6a308018ac1d';
const CORRELATOR = 'f50d36fb-b258-43d2-951f-e33a8c42baa9';

const christian = {
  schema_version: '1',
  // sha256("cms|cms|9d9a01c5-8e44-4953-b8bc-a0fdf56ea1ef"), computed with python's hashlib
  id: '96666d93a8e1f35fe8666e3de63a1c635dc3f300bbea24202dd40e47e6e5ec85',
  source_type: 'cms', source_instance: 'cms', source_record_id: '9d9a01c5-8e44-4953-b8bc-a0fdf56ea1ef', record_type: 'leg',
  call_id: CALL, correlation_id: CORRELATOR, call_name: 'techsupport',
  start_time: '2017-04-24T12:00:11Z', // callLegStart@time
  answer_time: '2017-04-24T12:00:11Z', // callLegUpdate state=connected @time
  end_time: '2017-04-24T13:06:05Z', // callLegEnd@time
  duration_s: 3953, billable_s: 3953, ring_s: 0, // durationSeconds, activatedDuration
  direction: 'inbound', direction_raw: 'incoming',
  caller_number: 'christian.wahlin@example.org', caller_name: 'Christian Wahlin', callee_number: null,
  extension: null, user_id: null, user_name: 'Christian Wahlin', agent_id: null, queue: null,
  answered: true, outcome: 'answered', outcome_raw: 'remoteTeardown', account_code: null, trunk: 'acano',
  channel: null, dst_channel: null, recordings: [], source_timezone: null, source_local_start: null,
  derived: ['ring_s'], flags: [], observed_at: OBSERVED,
};

describe('normalize: CMS legs', () => {
  it('joins the real 2017 posts into one record per ended leg, as written by hand', () => {
    const joiner = new CmsLegJoiner();
    const out = runCms(mividasPosts().slice(0, 9), joiner);
    assert.equal(out.length, 2);
    assert.deepEqual(out[0], christian);
    assert.deepEqual(out[1], {
      ...christian,
      id: out[1].id,
      source_record_id: 'aa7c3c54-07d6-4af3-b853-a25fe676e554',
      start_time: '2017-04-24T12:00:53Z', answer_time: '2017-04-24T12:00:53Z', end_time: '2017-04-24T13:06:05Z',
      duration_s: 3912, billable_s: 3912, caller_number: 'john.bergvall@example.org', caller_name: 'john bergvall', user_name: 'john bergvall',
    });
    // the leg that only sent an update is still open
    assert.equal(joiner.openLegs, 1);
  });

  it('gives the same ids and rows in xmltodict mode', () => {
    const typed = runCms(mividasPosts().slice(0, 9));
    const dict = runCms(mividasPosts().slice(0, 9), new CmsLegJoiner(), {}, 'xmltodict');
    assert.deepEqual(dict, typed);
  });

  it('takes the records of a whole POST as one message (output "per POST")', () => {
    const joiner = new CmsLegJoiner();
    const records = mividasPosts().slice(0, 9).flatMap((b) => parseCdrDocument(b).records);
    const payload = records.map((r) => cmsMessage(r).payload);
    const res = normalizeMessage({ topic: 'records', payload, cms: { session: records[0].session, callBridge: null, count: payload.length } }, joiner, opts());
    assert.deepEqual(res.records[0], christian);
    assert.equal(res.records.length, 2);
  });

  it('still emits a leg whose start was never seen (2022 clustered data), start derived from the end', () => {
    const out = runCms([
      shared('cms', 'real_mividas_2022-05-17_callStart_clustered_tenant.xml'),
      shared('cms', 'real_mividas_2022-05-17_callLegUpdate_canMove_confirmationStatus.xml'),
      shared('cms', 'real_mividas_2022-05-17_callLegEnd_confirmationStatus-rejected.xml'),
    ]);
    assert.equal(out.length, 1);
    const r = out[0];
    assert.equal(r.source_instance, '04aec22b-20bb-4e71-b5bc-3e82279fb4ac'); // callBridge
    assert.equal(r.source_record_id, '1611cb0c-e6a1-4e54-bd3a-53926d321da3');
    assert.equal(r.call_id, 'd4d90b1d-7590-4a1b-8586-3dfdd35936ba');
    assert.equal(r.correlation_id, '4417fa02-5538-48cc-a835-ff854afc0d8c');
    assert.equal(r.call_name, 'Test');
    assert.equal(r.end_time, '2022-05-17T10:09:08Z');
    assert.equal(r.start_time, '2022-05-17T10:07:30Z'); // 10:09:08 − 98 s
    assert.equal(r.duration_s, 98);
    assert.deepEqual(r.flags, ['leg_start_missing']);
    assert.deepEqual(r.derived, ['start_time']);
    assert.equal(r.caller_number, '0701234567@node01.example.org'); // remoteAddress of the update
    assert.equal(r.direction, 'unknown');
    assert.equal(r.outcome, 'rejected'); // confirmationStatus rejected
    assert.equal(r.outcome_raw, 'remoteTeardown;confirmationStatus=rejected');
    assert.equal(r.answered, false);
    assert.equal(r.billable_s, 0);
    assert.equal(r.answer_time, null);
    assert.deepEqual(validateCdr(r), []);
  });

  it('a callLegEnd alone (no start, no update) is emitted with what is known', () => {
    const out = runCms([shared('cms', 'real_mividas_2022-05-17_callLegEnd_confirmationStatus-rejected.xml')]);
    assert.equal(out.length, 1);
    assert.equal(out[0].call_id, null);
    assert.equal(out[0].call_name, null);
    assert.equal(out[0].start_time, '2022-05-17T10:07:30Z');
  });

  it('state survives snapshot → JSON → restore between start and end', () => {
    const posts = mividasPosts();
    const j1 = new CmsLegJoiner();
    runCms(posts.slice(0, 5), j1);
    const j2 = CmsLegJoiner.fromSaved(CMS_LIMITS, JSON.parse(JSON.stringify(j1.snapshot())), []);
    const out = runCms(posts.slice(5, 9), j2);
    assert.deepEqual(out[0], christian);
  });

  it('is bounded: beyond maxLegs the oldest started leg is sent as it is, flagged leg_end_missing', () => {
    const joiner = new CmsLegJoiner({ maxLegs: 1, maxCalls: 10 });
    const posts = mividasPosts();
    const out = runCms([posts[0], posts[1], posts[3]], joiner); // callStart, two callLegStarts
    assert.equal(out.length, 1);
    assert.equal(out[0].source_record_id, '9d9a01c5-8e44-4953-b8bc-a0fdf56ea1ef');
    assert.deepEqual(out[0].flags, ['leg_end_missing']);
    assert.equal(out[0].end_time, null);
    assert.equal(out[0].outcome, 'unknown');
    assert.equal(joiner.openLegs, 1);
  });

  it('attaches recordingStart paths of the call to its legs', () => {
    const posts = mividasPosts();
    const rec = `<?xml version="1.0"?><records session="s1"><record type="recordingStart" time="2017-04-24T12:00:20Z" recordIndex="3150" correlatorIndex="3149"><recording id="r1"><path>spaces/x/20170424120020+0000</path><recorderUrl>https://10.0.0.1:8443</recorderUrl><call>${CALL}</call></recording></record></records>`;
    const out = runCms([...posts.slice(0, 3), rec, ...posts.slice(3, 9)]);
    assert.deepEqual(out[0].recordings, [{ ref: 'spaces/x/20170424120020+0000', size_bytes: null, format: null, url: 'https://10.0.0.1:8443' }]);
  });

  it('keeps the joined source records in raw when asked', () => {
    const out = runCms(mividasPosts().slice(0, 9), new CmsLegJoiner(), { keepRaw: true });
    const raw = out[0].raw as { callLegStart: any; callLegUpdate: any[]; callLegEnd: any };
    assert.equal(raw.callLegStart.type, 'callLegStart');
    assert.equal(raw.callLegUpdate.length, 1);
    assert.equal(raw.callLegEnd.callLeg.reason, 'remoteTeardown');
  });

  it('refuses a message that is not a CMS record', () => {
    assert.throws(() => normalizeMessage({ topic: 'x', payload: 'text', cms: {} }, new CmsLegJoiner(), opts()), /not an object/);
    assert.throws(() => normalizeMessage({ topic: 'gap', payload: { kind: 'gap' }, cms: {} }, new CmsLegJoiner(), opts()), /without a type/);
  });
});
