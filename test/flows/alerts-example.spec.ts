/**
 * examples/CDR alerts by e-mail and Slack.json in a real Node-RED (test helper) with every node it uses:
 * core nodes, node-red-node-email's e-mail node and this package's cms-cdr-in, cms-call-tracker and
 * cdr-normalize. CMS call bridges post their CDR XML to the example's /cdr-alerts over HTTP; the mails
 * go to a real SMTP server on loopback (test/simulators/smtp.ts) and the Slack messages to a local
 * webhook that checks Block Kit (test/simulators/slack-sink.ts). Times are shortened only through the
 * example's own settings, the environment variables of its tab.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { helper, translate, coreNode, useTempUserDir } from '../helpers/red';
import { editorTypes, exampleFiles, loadExampleFile } from '../helpers/examples';
import { CmsSender } from '../simulators/cms-sender';
import { SmtpSink, type ReceivedMail } from '../simulators/smtp';
import { SlackSink } from '../simulators/slack-sink';
import cmsCdrIn from '../../src/nodes/cms-cdr-in';
import cmsCallTracker from '../../src/nodes/cms-call-tracker';
import cdrNormalize from '../../src/nodes/cdr-normalize';

const FILE = 'CDR alerts by e-mail and Slack.json';
const ID = (key: string) => `cdralerts_${key}`;
const emailDir = path.dirname(require.resolve('node-red-node-email/package.json'));
const MAIL_USER = 'alerts@example.com';
const MAIL_PASS = 'smtp-pass-4711';
const TO = ['oncall@example.com', 'noc@example.com'];
/** Settings for the tests: a short storm window and short retry waits, through the tab's variables. */
const FAST = {
  ALERT_MAIL_TO: TO.join(', '),
  ALERT_MAIL_FROM: 'CDR alerts <cdr-alerts@example.com>',
  ALERT_WINDOW_MIN: 10,
  ALERT_SLACK_GAP_S: 0.02,
  ALERT_SLACK_RETRY_S: 0.1,
  ALERT_MAIL_RETRY_S: 0.1,
};

interface Alert {
  kind: string;
  key: string;
  title: string;
  digest: boolean;
  count: number;
  from?: string;
  to?: string;
}

/** The RED the nodes were given; RED._ answers our keys from our catalogs and echoes the others' (as the helper's does). */
let RED: any = null;
const withCatalogs = (mod: any) => (red: any) => {
  RED = red;
  red._ = (key: string, vars?: Record<string, unknown>) => { try { return translate(key, vars); } catch { return key; } }; // eslint-disable-line
  return mod(red);
};

/**
 * node-red-node-test-helper registers its catch and status modules once per Catch or Status node of the
 * flow, and a type registers only once: with the example's two Catch nodes, each module loads once per load.
 */
const helperModules: Record<string, (red: any) => unknown> = (helper as any)._nodeModules;
function eachCoreModuleOnce(): void {
  (helper as any)._nodeModules = Object.fromEntries(Object.entries(helperModules).map(([type, mod]) => {
    let loaded = false;
    return [type, (red: any) => (loaded ? undefined : ((loaded = true), mod(red)))];
  }));
}

async function until<T>(what: string, fn: () => T | undefined | false, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One CMS call bridge session: records with consecutive indexes, in the order they are made. */
class Bridge {
  private index = 0;
  readonly session = randomUUID();

  record(type: string, time: string, id: string, inner: string): string {
    this.index++;
    const obj = type.startsWith('callLeg') ? 'callLeg' : 'call';
    return `<record type="${type}" time="${time}" recordIndex="${this.index}" correlatorIndex="${this.index + 500}"><${obj} id="${id}">${inner}</${obj}></record>`;
  }

  /** A call to `to` from `from` that ended with `reason` (ringingTimeout, remoteBusy, …), never connected. */
  missed(time: string, from: string, to: string, reason: string, name = ''): string[] {
    const leg = randomUUID();
    return [
      this.record('callLegStart', time, leg, `<displayName>${esc(name)}</displayName><remoteParty>${from}</remoteParty><localAddress>${to}</localAddress><type>sip</type><direction>incoming</direction>`),
      this.record('callLegEnd', time, leg, `<reason>${reason}</reason><durationSeconds>25</durationSeconds>`),
    ];
  }

  skip(n: number): void {
    this.index += n;
  }

  doc(records: string[]): string {
    return `<?xml version="1.0"?><records session="${this.session}">${records.join('')}</records>`;
  }
}
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

describe('example flow: CDR alerts by e-mail and Slack', function () {
  this.timeout(60_000);
  useTempUserDir('each', 'alerts-example-');
  let smtp: SmtpSink;
  let slack: SlackSink;
  let front: http.Server | null = null;
  let cms: CmsSender | null = null;
  const alerts: Alert[] = [];
  /** a sequence over alerts arriving and the fold node's windows closing, and where the last alert is in it */
  let events = 0;
  let lastAlert = 0;
  const undelivered: any[] = [];

  after(() => {
    (helper as any)._nodeModules = helperModules;
  });
  // new servers on new ports for every test, so nothing a flow of an earlier test still sends lands here
  beforeEach(async () => {
    smtp = await new SmtpSink(MAIL_USER, MAIL_PASS).start();
    slack = await new SlackSink().start();
    alerts.length = 0;
    undelivered.length = 0;
    process.env.CDR_SLACK_WEBHOOK_URL = slack.url;
  });
  afterEach(async () => {
    delete process.env.CDR_SLACK_WEBHOOK_URL;
    cms?.close();
    cms = null;
    if (front) await new Promise((r) => front!.close(r));
    front = null;
    await smtp.stop();
    await slack.stop();
  });

  /**
   * Loads the example with the given values for its tab's variables, the e-mail node pointed at the
   * local SMTP server with a login (unless `mail` is false), and an HTTP server in front of Node-RED's
   * HTTP node routes for the CMS bridges to post to.
   */
  async function start(settings: Record<string, string | number | object>, mail = true): Promise<void> {
    const flow = loadExampleFile(FILE);
    const tab = flow.find((n) => n.type === 'tab');
    for (const [name, value] of Object.entries(settings)) {
      const e = tab.env.find((x: any) => x.name === name);
      assert.ok(e, `the tab has the setting ${name}`);
      e.value = typeof value === 'object' ? JSON.stringify(value) : String(value);
    }
    const credentials: Record<string, unknown> = {};
    if (mail) {
      Object.assign(flow.find((n) => n.id === ID('email')), { server: '127.0.0.1', port: String(smtp.port), secure: false, authtype: 'BASIC' });
      credentials[ID('email')] = { userid: MAIL_USER, password: MAIL_PASS };
    }
    const core = (f: string) => coreNode(f);
    eachCoreModuleOnce();
    await helper.load([
      core('common/90-comment.js'), core('common/21-debug.js'), core('common/60-link.js'), core('function/10-function.js'),
      core('function/89-delay.js'), core('function/89-trigger.js'), core('network/21-httprequest.js'),
      withCatalogs(require(path.join(emailDir, '61-email.js'))), withCatalogs(cmsCdrIn), withCatalogs(cmsCallTracker), withCatalogs(cdrNormalize),
    ] as any, flow, credentials as any);
    helper.getNode(ID('alerts')).on('input', (m: any) => {
      alerts.push(m.alert);
      lastAlert = ++events;
    });
    helper.getNode(ID('undelivered')).on('input', (m: any) => undelivered.push(m));
    front = http.createServer(RED.httpNode);
    await new Promise<void>((r) => front!.listen(0, '127.0.0.1', () => r()));
    cms = new CmsSender({ url: `http://127.0.0.1:${(front.address() as AddressInfo).port}/cdr-alerts`, retryDelayMs: 20, maxAttempts: 3 });
  }

  async function post(bridge: Bridge, records: string[], perPost = 40): Promise<void> {
    for (let i = 0; i < records.length; i += perPost) {
      const res = await cms!.send(bridge.doc(records.slice(i, i + perPost)));
      assert.equal(res.status, 200);
    }
  }

  /**
   * Whether every window of "fold storms" has closed since the last alert arrived: its status ("2 open ·
   * 14 folded") went blank after that alert, so the window the alert opened was shown open and then closed.
   */
  function foldWindows(): () => boolean {
    let last = '';
    let closed = 0;
    (helper.getNode(ID('fold')) as any).on('call:status', (call: any) => {
      const text = call.args[0]?.text ?? '';
      if (!text && last) closed = ++events;
      last = text;
    });
    return () => alerts.length > 0 && closed > lastAlert;
  }

  const errorLogs = () => helper.log().args.map((a: any) => a[0]).filter((e: any) => e && e.level <= 20).map((e: any) => `${e.type} ${e.name ?? ''}: ${e.msg}`);
  const mailFor = (a: Alert) => smtp.mails.filter((m) => m.subject === `[CDR alert] ${a.title}`);
  const slackFor = (a: Alert) => slack.accepted().filter((b) => b.blocks[0].text.text === a.title);

  it('is an importable flow: its own tab holding the settings, named nodes with every property set, its own path, no secrets', () => {
    const text = fs.readFileSync(path.join(__dirname, '..', '..', 'examples', FILE), 'utf8');
    const flow = JSON.parse(text) as any[];
    const tab = flow.find((n) => n.type === 'tab');
    assert.equal(tab.label, FILE.replace(/\.json$/, ''));
    for (const n of flow.filter((x) => x.type !== 'tab')) assert.equal(n.z, tab.id, `${n.type} ${n.id} is on the tab`);
    assert.deepEqual(tab.env.map((e: any) => e.name), ['ALERT_MAIL_TO', 'ALERT_MAIL_FROM', 'ALERT_SLACK_URL', 'ALERT_WINDOW_MIN', 'ALERT_LONG_CALL_MIN',
      'ALERT_SCHEDULES_MIN', 'ALERT_STALE_AFTER', 'ALERT_MAIL_RETRY_S', 'ALERT_MAIL_ATTEMPTS', 'ALERT_SLACK_GAP_S', 'ALERT_SLACK_RETRY_S', 'ALERT_SLACK_ATTEMPTS']);
    assert.deepEqual(tab.env.find((e: any) => e.name === 'ALERT_SLACK_URL'), { name: 'ALERT_SLACK_URL', value: 'CDR_SLACK_WEBHOOK_URL', type: 'env' });
    const readme = flow.find((n) => n.type === 'comment').info as string;
    for (const e of tab.env) assert.ok(readme.includes(`| ${e.name} |`), `the read-me documents ${e.name}`);

    // the editor's definitions, node-red-node-email's among them (a development dependency)
    const types = editorTypes();
    for (const n of flow.filter((x) => x.type !== 'tab')) {
      const keys = types.get(n.type)?.defaults;
      assert.ok(keys, `editor definition of ${n.type}`);
      assert.deepEqual(keys.filter((k: string) => !(k in n)), [], `${n.type} "${n.name}" sets every property`);
      if (keys.includes('name')) assert.ok(typeof n.name === 'string' && n.name.trim(), `${n.type} ${n.id} has a name`);
    }
    const email = flow.find((n) => n.type === 'e-mail');
    assert.equal(email.name, '${ALERT_MAIL_TO}', 'the e-mail node\'s To field reads the tab\'s ALERT_MAIL_TO');
    assert.equal(email.authtype, 'NONE', 'no login to fill in before it deploys cleanly');
    assert.equal(email.tls, true, 'server certificates are checked');

    assert.equal(flow.find((n) => n.type === 'cms-cdr-in').path, '/cdr-alerts');
    for (const other of exampleFiles().filter((f) => f !== FILE)) {
      const theirs = loadExampleFile(other);
      assert.ok(!theirs.some((n) => n.path === '/cdr-alerts'), `${other} does not use /cdr-alerts`);
      assert.ok(!theirs.some((n) => flow.some((m) => m.id === n.id)), `no node id shared with ${other}`);
    }
    assert.doesNotMatch(text, /hooks\.slack\.com|"credentials"|"password"|smtp-pass/);
  });

  it('deploys with nothing configured: no red status, no error logged, alerts only in the debug sidebar', async () => {
    delete process.env.CDR_SLACK_WEBHOOK_URL;
    await start({}, false);
    const bridge = new Bridge();
    await post(bridge, bridge.missed('2026-11-23T09:00:00Z', '+15550100', '+442079460000', 'ringingTimeout'));
    await until('the alert in the sidebar', () => alerts.length === 1);
    await settle(300);
    assert.equal(alerts[0].title, 'Missed call on +442079460000');
    assert.deepEqual([smtp.mails.length, slack.posts.length], [0, 0], 'no e-mail without ALERT_MAIL_TO, no Slack without CDR_SLACK_WEBHOOK_URL');
    const red = (helper.getNode(ID('fold')) as any).status.getCalls().filter((c: any) => c.args[0]?.fill === 'red');
    assert.deepEqual(red.map((c: any) => `${c.thisValue.type} ${c.thisValue.name}: ${c.args[0].text}`), []);
    assert.deepEqual(errorLogs(), []);
  });

  it('sends the first missed call at once: a mail with HTML and text bodies to every recipient, and a Block Kit message', async () => {
    await start(FAST);
    const bridge = new Bridge();
    await post(bridge, bridge.missed('2026-11-23T09:15:07Z', '+15550123', '+442079460000', 'ringingTimeout', 'O\'Brien & <Sons>'));
    const [mail] = await until('the mail', () => smtp.mails.length === 1 && smtp.mails);
    const [body] = await until('the Slack message', () => slack.accepted().length === 1 && slack.accepted());

    assert.equal(mail.user, MAIL_USER, 'logged in with the e-mail node\'s credentials');
    assert.equal(mail.envelopeFrom, 'cdr-alerts@example.com');
    assert.deepEqual(mail.envelopeTo, TO);
    assert.deepEqual(mail.from, { address: 'cdr-alerts@example.com', name: 'CDR alerts' });
    assert.deepEqual(mail.to, TO);
    assert.equal(mail.subject, '[CDR alert] Missed call on +442079460000');
    assert.deepEqual(mail.parts, ['multipart/alternative', 'text/plain', 'text/html']);
    assert.match(mail.text, /^Missed call on \+442079460000\n\nInbound call from \+15550123 \(O'Brien & <Sons>\) on \+442079460000 was not answered: no_answer\.\n/);
    assert.match(mail.text, /\nOutcome: no_answer \(ringingTimeout\)\nTime: 2026-11-23T09:15:07Z\nSource: cms cms\n/);
    assert.match(mail.text, /Further missed calls on \+442079460000 within 10 min come as one digest\.$/);
    assert.match(mail.html, /<h2[^>]*>Missed call on \+442079460000<\/h2>/);
    assert.match(mail.html, /<th[^>]*>Caller name<\/th><td>O'Brien &amp; &lt;Sons&gt;<\/td>/);
    assert.doesNotMatch(mail.html, /<Sons>/, 'values are escaped in the HTML');

    assert.deepEqual(slack.posts.map((p) => [p.status, p.contentType, p.problems]), [[200, 'application/json', []]]);
    assert.equal(body.text, 'Missed call on +442079460000: Inbound call from +15550123 (O\'Brien & <Sons>) on +442079460000 was not answered: no_answer.');
    assert.deepEqual(body.blocks.map((b: any) => b.type), ['header', 'section', 'section', 'context']);
    assert.deepEqual(body.blocks[0].text, { type: 'plain_text', text: 'Missed call on +442079460000', emoji: true });
    assert.equal(body.blocks[1].text.text, ':warning: Inbound call from +15550123 (O\'Brien &amp; &lt;Sons&gt;) on +442079460000 was not answered: no_answer.');
    assert.deepEqual(body.blocks[2].fields[0], { type: 'mrkdwn', text: '*Caller*\n+15550123' });
    assert.deepEqual(alerts.map((a) => [a.kind, a.key, a.digest, a.count]), [['missed', '+442079460000', false, 1]]);
    assert.deepEqual(errorLogs(), []);
  });

  it('folds a burst of 500 missed calls in one minute: per number one alert at once, then one digest per window, no call lost from the counts', async () => {
    await start({ ...FAST, ALERT_WINDOW_MIN: 0.05 }); // a 3 s window
    const closed = foldWindows();
    const numbers = ['+442079460000', '+442079460001', 'sales@video.example.com'];
    const reasons = ['ringingTimeout', 'remoteBusy', 'remoteTeardown', 'remoteRejected'];
    const expected = new Map(numbers.map((n) => [n, 0]));
    const bridge = new Bridge();
    const records: string[] = [];
    for (let i = 0; i < 500; i++) {
      const to = numbers[i % 10 < 6 ? 0 : i % 10 < 9 ? 1 : 2]; // 300, 150 and 50 calls
      expected.set(to, expected.get(to)! + 1);
      const time = new Date(Date.parse('2026-11-23T10:00:00Z') + i * 119).toISOString().replace(/\.\d+Z$/, 'Z'); // within one minute
      records.push(...bridge.missed(time, `+1555${String(1000 + i)}`, to, reasons[i % 4]));
    }
    await post(bridge, records);
    const total = (key: string) => alerts.filter((a) => a.key === key).reduce((s, a) => s + a.count, 0);
    await until('every call counted', () => numbers.every((n) => total(n) === expected.get(n)));
    await until('every window closed (a quiet window)', closed);

    for (const n of numbers) {
      const mine = alerts.filter((a) => a.key === n);
      assert.deepEqual(mine.filter((a) => !a.digest).map((a) => a.title), [`Missed call on ${n}`], `one alert at once for ${n}`);
      const digests = mine.filter((a) => a.digest);
      assert.ok(digests.length >= 1, `${n}: a digest`);
      for (const [i, d] of digests.entries()) {
        assert.ok(d.count > 0);
        assert.equal(d.title, `${d.count} more missed ${d.count === 1 ? 'call' : 'calls'} on ${n} in the last 3 s`);
        if (i > 0) assert.ok(d.from! >= digests[i - 1].to!, `${n}: one digest per window (${digests[i - 1].from}–${digests[i - 1].to}, ${d.from}–${d.to})`);
      }
      assert.equal(1 + digests.reduce((s, d) => s + d.count, 0), expected.get(n), `${n}: every call in a count`);
    }
    assert.ok(alerts.length <= 12, `${alerts.length} alerts for 500 calls`);

    // each went out once by mail and once to Slack, and the digests' counts are in the mails
    await until('the mails and Slack messages', () => smtp.mails.length === alerts.length && slack.accepted().length === alerts.length);
    for (const a of alerts) {
      assert.equal(mailFor(a).length, 1, a.title);
      assert.equal(slackFor(a).length, 1, a.title);
    }
    for (const n of numbers) {
      const counted = smtp.mails.map((m) => new RegExp(`^\\[CDR alert\\] (\\d+) more missed calls? on ${n.replace(/[+.]/g, '\\$&')} in the last 3 s$`).exec(m.subject))
        .filter((m): m is RegExpExecArray => m !== null).reduce((s, m) => s + Number(m[1]), 0);
      assert.equal(counted + 1, expected.get(n), `${n}: the mails count every call`);
    }
    const digestMail = smtp.mails.find((m) => / more missed calls on \+442079460000 /.test(m.subject)) as ReceivedMail;
    assert.match(digestMail.text, /\n- 10:00:0\d from \+1555\d{4} \((no_answer|busy|cancelled|rejected)\)\n/);
    assert.match(digestMail.text, /\n… and \d+ more\n/);
    assert.match(digestMail.html, /<li>10:00:0\d from \+1555\d{4} \(\w+\)<\/li>/);
    assert.deepEqual(slack.posts.filter((p) => p.problems.length), []);

    // after the quiet window the next missed call on each number goes out at once again
    const before = alerts.length;
    const more: string[] = [];
    for (const n of numbers) more.push(...bridge.missed('2026-11-23T10:05:00Z', '+15559999', n, 'ringingTimeout'));
    await post(bridge, more);
    await until('three alerts', () => alerts.length === before + 3);
    assert.deepEqual(alerts.slice(before).map((a) => [a.key, a.digest]).sort(), numbers.map((n) => [n, false]).sort());
    await until('their mails and Slack messages', () => smtp.mails.length === alerts.length && slack.accepted().length === alerts.length);
    for (const a of alerts.slice(before)) assert.deepEqual([mailFor(a).length, slackFor(a).length], [2, 2], a.title);
  });

  it('backs off when Slack answers 429 with Retry-After: nothing posted until it has passed, then the same message first, then the next', async () => {
    await start(FAST);
    slack.rateLimitNext(1); // and every post within that second is refused too, as Slack does
    const bridge = new Bridge();
    await post(bridge, bridge.missed('2026-11-23T11:00:00Z', '+15550001', '+442079460000', 'ringingTimeout'));
    await until('the first post', () => slack.posts.length === 1);
    await post(bridge, bridge.missed('2026-11-23T11:00:01Z', '+15550002', '+442079460001', 'remoteBusy'));
    await until('both messages in Slack', () => slack.accepted().length === 2);
    await until('both mails', () => smtp.mails.length === 2);
    await settle(300);
    assert.deepEqual(slack.posts.map((p) => [p.status, p.problems]), [[429, []], [200, []], [200, []]], 'no post while rate-limited');
    const [limited, retried, next] = slack.posts;
    assert.deepEqual(retried.body, limited.body, 'the message that got 429 is the one sent again, before the one queued behind it');
    assert.equal(next.body.blocks[0].text.text, 'Missed call on +442079460001');
    assert.ok(retried.at - limited.at >= 1000, `waited the Retry-After second (${retried.at - limited.at} ms)`);
    assert.deepEqual(alerts.map((a) => slackFor(a).length), [1, 1], 'each alert delivered once');
    assert.deepEqual(undelivered, []);
    assert.deepEqual(smtp.mails.map((m) => m.subject), alerts.map((a) => `[CDR alert] ${a.title}`), 'the mails do not wait for Slack');
  });

  it('delivers the mails of alerts raised while the SMTP server was down once it is back, each once', async () => {
    // attempts every 0.2 s for a minute (300): the outage is a few attempts long
    await start({ ...FAST, ALERT_MAIL_RETRY_S: 0.2, ALERT_MAIL_ATTEMPTS: 300 });
    // what the e-mail node reports to Catch ("try the e-mail again?" takes msg.error off the message)
    const failures: Array<[string, string]> = [];
    helper.getNode(ID('mailcatch')).on('input', (m: any) => failures.push([m.topic, m.error.message]));
    await smtp.stop();
    const bridge = new Bridge();
    await post(bridge, [...bridge.missed('2026-11-23T12:00:00Z', '+15550003', '+442079460000', 'ringingTimeout'),
      ...bridge.missed('2026-11-23T12:00:02Z', '+15550004', '+442079460001', 'ringingTimeout')]);
    await until('Slack has both', () => slack.accepted().length === 2);
    const subjects = alerts.map((a) => `[CDR alert] ${a.title}`);
    assert.equal(subjects.length, 2);
    await until('three failed attempts per mail', () => subjects.every((t) => failures.filter(([topic]) => topic === t).length >= 3));
    assert.ok(failures.every(([, f]) => /ECONNREFUSED/.test(f)), failures[0][1]);
    assert.equal(smtp.mails.length, 0);
    await smtp.start();
    await until('both mails', () => smtp.mails.length === 2);
    await settle(500);
    assert.deepEqual(smtp.mails.map((m) => m.subject).sort(), alerts.map((a) => `[CDR alert] ${a.title}`).sort());
    assert.deepEqual(smtp.mails.map((m) => m.envelopeTo), [TO, TO]);
    assert.deepEqual(undelivered, []);
  });

  it('reports a mail it could not send in "undelivered alerts" after the last attempt, with a warning', async () => {
    await start({ ...FAST, ALERT_MAIL_RETRY_S: 0.05, ALERT_MAIL_ATTEMPTS: 3 });
    await smtp.stop();
    const bridge = new Bridge();
    await post(bridge, bridge.missed('2026-11-23T12:30:00Z', '+15550005', '+442079460000', 'ringingTimeout'));
    const [u] = await until('the undelivered alert', () => undelivered.length === 1 && undelivered);
    assert.equal(u.topic, 'undelivered/e-mail');
    assert.equal(u.attempts, 3);
    assert.match(u.payload, /ECONNREFUSED/);
    assert.equal(u.alert.title, 'Missed call on +442079460000');
    const warnings = helper.log().args.map((a: any) => a[0]).filter((e: any) => e?.level === 30).map((e: any) => String(e.msg));
    assert.ok(warnings.some((w: string) => /alert e-mail "\[CDR alert\] Missed call on \+442079460000" not delivered after 3 attempt\(s\): .*ECONNREFUSED/.test(w)), warnings.join('\n'));
    await smtp.start();
    await settle(300);
    assert.equal(smtp.mails.length, 0, 'given up: not sent later');
    assert.equal(slack.accepted().length, 1);
  });

  it('alerts on a long call, a guest in a restricted meeting, lost records, a source error and a source that stopped delivering', async () => {
    // silent for 3.6 s: stale; a 3 s window, so a problem said twice would come back as a digest
    await start({ ...FAST, ALERT_WINDOW_MIN: 0.05, ALERT_SCHEDULES_MIN: { cms: 0.02 }, ALERT_STALE_AFTER: 3 });
    const closed = foldWindows();
    const bridge = new Bridge();
    const leg = randomUUID();
    const firstPostAt = new Date().toISOString();
    await post(bridge, [
      bridge.record('callLegStart', '2026-11-23T07:00:00Z', leg, '<remoteParty>+15550006</remoteParty><localAddress>+442079460002</localAddress><type>sip</type><direction>incoming</direction>'),
      bridge.record('callLegUpdate', '2026-11-23T07:00:05Z', leg, '<state>connected</state>'),
      bridge.record('callLegEnd', '2026-11-23T09:30:05Z', leg, '<reason>remoteTeardown</reason><durationSeconds>9005</durationSeconds><activatedDuration>9000</activatedDuration>'),
    ]);
    const CALL = randomUUID();
    await post(bridge, [
      bridge.record('callStart', '2026-11-23T09:31:00Z', CALL, `<name>RESTRICTED board</name><callCorrelator>${randomUUID()}</callCorrelator>`),
      bridge.record('callLegStart', '2026-11-23T09:31:01Z', randomUUID(), `<remoteParty>chair@corp.example</remoteParty><call>${CALL}</call>`),
      bridge.record('callLegStart', '2026-11-23T09:31:09Z', randomUUID(), `<displayName>Visitor</displayName><guestConnection>true</guestConnection><type>acano</type><call>${CALL}</call>`),
    ]);
    bridge.skip(4); // records 7 to 10 never arrive
    await post(bridge, [bridge.record('callEnd', '2026-11-23T09:40:00Z', randomUUID(), '')]);
    const lastRecordAt = new Date().toISOString(); // the malformed POST below gives no record
    // refused with 400; CMS (and its simulator) posts it again, so the receiver refuses it `attempts` times
    const refusedPost = await cms!.send('<records><record type="callStart"');
    assert.deepEqual(refusedPost, { status: 400, attempts: 3 });

    const titles = [
      'Call of 150 min on +442079460002',
      'Guest joined restricted meeting "RESTRICTED board"',
      'CDRs lost from CMS 127.0.0.1',
      'CMS CDRs (alerts): ',
      'No CDRs from cms/cms for 4 s',
    ];
    await until('the five alerts', () => titles.every((t) => alerts.some((a) => a.title.startsWith(t))));
    await until('every window closed', closed);
    const byTitle = (t: string) => alerts.find((a) => !a.digest && a.title.startsWith(t)) as Alert & { text: string };
    assert.deepEqual(titles.map((t) => byTitle(t).kind), ['long', 'guest', 'source', 'source', 'stale']);
    assert.match(byTitle('CDRs lost').text, /^CDR records 7 to 10 of session .* did not arrive\.$/);
    // cms-cdr-in answered 400, showed a red status and sent the reason to Catch: one alert, with the reason
    const refused = byTitle('CMS CDRs (alerts): ');
    assert.match(refused.text, /^The cms-cdr-in node "CMS CDRs \(alerts\)" reported: \S/);
    assert.doesNotMatch(refused.title, /red status/);
    const stale = byTitle('No CDRs');
    assert.match(stale.text, /^cms\/cms sent no record for 4 s \(3 × its schedule of 1 s\); the last one came at (\S+)\./);
    const last = /at (\S+)\./.exec(stale.text)![1];
    // observed_at is given in whole seconds
    const lastMs = Date.parse(last);
    assert.ok(lastMs >= Math.floor(Date.parse(firstPostAt) / 1000) * 1000 && lastMs <= Date.parse(lastRecordAt),
      `counted from the last record (${firstPostAt} ≤ ${last} ≤ ${lastRecordAt})`);
    // the other two refusals in one digest; the red status shown with each refusal is not counted again
    assert.deepEqual(alerts.filter((a) => a.digest).map((a) => [a.kind, a.key, a.count, a.title]),
      [['source', ID('cms'), refusedPost.attempts - 1, `${refusedPost.attempts - 1} more problems with CMS CDRs (alerts) in the last 3 s`]]);
    assert.equal(alerts.length, 6, JSON.stringify(alerts.map((a) => a.title)));
    await until('mails and Slack messages', () => smtp.mails.length === 6 && slack.accepted().length === 6);
    for (const a of alerts) assert.deepEqual([mailFor(a).length, slackFor(a).length], [1, 1], a.title);
    assert.deepEqual(slack.posts.filter((p) => p.problems.length), []);
  });

  it('alerts once on a red status that comes without an error (a source that cannot work), not again while it stays', async () => {
    await start({ ...FAST, ALERT_WINDOW_MIN: 0.05 });
    const closed = foldWindows();
    // what a source shows when it cannot work and nothing reaches Catch (a configuration problem at deploy)
    const source = helper.getNode(ID('cms')) as any;
    source.status({ fill: 'red', shape: 'ring', text: 'configuration broken' });
    source.status({ fill: 'red', shape: 'ring', text: 'configuration broken' }); // shown again: no news
    await until('the alert', () => alerts.length === 1);
    await until('every window closed', closed);
    assert.deepEqual(alerts.map((a) => [a.kind, a.key, a.digest, a.count, a.title]),
      [['source', ID('cms'), false, 1, 'CMS CDRs (alerts): red status "configuration broken"']]);
    assert.equal((alerts[0] as Alert & { text: string }).text,
      'The cms-cdr-in node "CMS CDRs (alerts)" shows the red status "configuration broken" and reported no error with it.');
    await until('the mail and the Slack message', () => smtp.mails.length === 1 && slack.accepted().length === 1);
    assert.equal(smtp.mails[0].subject, '[CDR alert] CMS CDRs (alerts): red status "configuration broken"');
  });
});
