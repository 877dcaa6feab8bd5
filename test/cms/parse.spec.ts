import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { parseCdrDocument, CdrParseError, xmlObjects } from '../../src/cms/parse';
import { shared, own, mividasPosts, envelope, sortKeys, sharedFixtures } from '../helpers/fixtures';

describe('cms/parse', () => {
  describe('real payloads', () => {
    it('parses all ten 2017 posts in both modes, one record per <record>', () => {
      const posts = mividasPosts();
      assert.equal(posts.length, 10);
      for (const body of posts) {
        const expected = (body.match(/<record /g) ?? []).length;
        const typed = parseCdrDocument(body, 'typed');
        const dict = parseCdrDocument(body, 'xmltodict');
        assert.equal(typed.records.length, expected);
        assert.equal(dict.records.length, expected);
        assert.equal(typed.session, '5552fc55-8d82-4963-8f99-d5a0be6e2f92');
        for (const r of typed.records) {
          assert.ok(r.type && r.time && r.recordIndex !== null && r.correlatorIndex !== null && r.objectType && r.id, JSON.stringify(r));
        }
      }
    });

    it('keeps document order and types a two-record POST (callLegEnd + callEnd)', () => {
      const doc = parseCdrDocument(mividasPosts()[8]);
      assert.deepEqual(doc.records.map((r) => [r.type, r.recordIndex, r.correlatorIndex]), [
        ['callLegEnd', 3553, 3552],
        ['callEnd', 3554, 3553],
      ]);
      const leg = doc.records[0].body.callLeg as Record<string, any>;
      assert.equal(leg.id, 'aa7c3c54-07d6-4af3-b853-a25fe676e554');
      assert.equal(leg.reason, 'remoteTeardown');
      assert.equal(leg.remoteTeardown, true);
      assert.equal(leg.durationSeconds, 3912);
      assert.equal(leg.mediaUsagePercentages.mainVideoViewer, 99.9);
      assert.deepEqual(leg.alarm, [
        { type: 'packetLoss', durationPercentage: 0.1 },
        { type: 'excessiveJitter', durationPercentage: 0 },
      ]);
      assert.deepEqual(leg.rxVideo, { codec: 'h264', maxSizeWidth: 1280, maxSizeHeight: 720 });
      assert.deepEqual(doc.records[1].body.call, { id: 'f54bfbc3-c11e-47a6-a918-6a308018ac1d', callLegsCompleted: 3, callLegsMaxActive: 3, durationSeconds: 3955 });
    });

    it('reads the clustered, multi-tenant 2022 envelope', () => {
      const doc = parseCdrDocument(shared('cms', 'real_mividas_2022-05-17_callStart_clustered_tenant.xml'));
      assert.ok(doc.callBridge, 'callBridge attribute');
      const r = doc.records[0];
      assert.equal(r.callBridge, doc.callBridge);
      assert.equal(r.recordIndex, 86556);
      assert.equal(r.correlatorIndex, 196284);
      const call = r.body.call as Record<string, unknown>;
      assert.equal(call.ownerName, null, 'empty <ownerName/> is null');
      assert.ok(typeof call.tenant === 'string');
    });

    it('parses every other real capture', () => {
      const files = [
        'real_mividas_2022-05-17_callEnd.xml',
        'real_mividas_2022-05-17_callLegEnd_confirmationStatus-rejected.xml',
        'real_mividas_2022-05-17_callLegUpdate_canMove_confirmationStatus.xml',
        'real_ciscocms-cdr-receiver_readme_2019-04-04_callStart.xml',
      ];
      for (const f of files) {
        const doc = parseCdrDocument(shared('cms', f));
        assert.equal(doc.records.length, 1, f);
      }
      const upd = parseCdrDocument(shared('cms', 'real_mividas_2022-05-17_callLegUpdate_canMove_confirmationStatus.xml')).records[0];
      const leg = upd.body.callLeg as Record<string, unknown>;
      assert.equal(leg.canMove, true);
      assert.equal(leg.confirmationStatus, 'notRequired');
      assert.equal(typeof leg.deactivated, 'boolean');
      const cisco = parseCdrDocument(shared('cms', 'real_ciscocms-cdr-receiver_readme_2019-04-04_callStart.xml')).records[0];
      assert.equal((cisco.body.call as Record<string, unknown>).ownerName, null);
      assert.equal(cisco.recordIndex, 1);
      assert.equal(cisco.correlatorIndex, 6);
    });

    it('parses the recording and streaming records, trimming values', () => {
      for (const kind of ['recordingStart', 'recordingEnd', 'streamingStart', 'streamingEnd']) {
        const doc = parseCdrDocument(envelope(shared('cms', `real_mividas_2019-03-21_${kind}_record-only.xml`)));
        const r = doc.records[0];
        assert.equal(r.type, kind);
        assert.equal(r.objectType, kind.startsWith('recording') ? 'recording' : 'streaming');
        assert.ok(r.id);
        for (const v of Object.values(r.body[r.objectType!] as Record<string, unknown>)) {
          if (typeof v === 'string') assert.equal(v, v.trim());
        }
      }
      const start = parseCdrDocument(envelope(shared('cms', 'real_mividas_2019-03-21_streamingStart_record-only.xml'))).records[0];
      assert.match((start.body.streaming as Record<string, string>).streamUrl, /^rtmp:\/\//);
    });

    it('parses the normalized documentation examples and refuses them as printed', () => {
      const dir = path.join(sharedFixtures, 'cms', 'official-doc-example_cms-2.0-cdr-guide');
      for (const n of ['01', '02', '03', '04']) {
        const ok = parseCdrDocument(fs.readFileSync(path.join(dir, `post${n}_normalized.xml`), 'utf8'));
        assert.ok(ok.records.length >= 1);
        assert.throws(() => parseCdrDocument(fs.readFileSync(path.join(dir, `post${n}_as-printed.txt`), 'utf8')), CdrParseError);
      }
      const two = parseCdrDocument(fs.readFileSync(path.join(dir, 'post02_normalized.xml'), 'utf8'));
      assert.equal((two.records[0].body.call as Record<string, unknown>).callCorrelator, '5f3300c5-ca67-40e0-a503-91baec70dbbe');
    });

    it('refuses the real two-documents-in-one-body capture', () => {
      assert.throws(
        () => parseCdrDocument(shared('cms', 'real-derived_mividas_2020-01-07_two-documents-one-body_MALFORMED.txt')),
        (err: unknown) => err instanceof CdrParseError && err.code === 'malformed',
      );
    });
  });

  describe('xmltodict mode', () => {
    it("reproduces cdr-receiver-db's API capture from the same records", () => {
      const doc = parseCdrDocument(own('cms', 'cdr-receiver-db-call.xml'), 'xmltodict');
      const newestFirst = doc.records.map((r) => r.xmltodict).reverse();
      const expected = JSON.parse(shared('cms', 'real_ciscocms-cdr-receiver-db_readme_api_records_page1.json'));
      assert.deepEqual(sortKeys({ records: newestFirst }), expected);
      // byte for byte once keys are sorted, the way Flask's jsonify wrote it
      assert.equal(JSON.stringify(sortKeys(newestFirst[0])), JSON.stringify(expected.records[0]));
    });

    it('gives one alarm as an object, two as an array, empty elements as null, all values as strings', () => {
      const one = '<records session="s"><record type="callLegEnd" time="t" recordIndex="1" correlatorIndex="0"><callLeg id="x"><alarm type="packetLoss" durationPercentage="1.4"/><ivr/><durationSeconds>5</durationSeconds></callLeg></record></records>';
      const rec = parseCdrDocument(one, 'xmltodict').records[0].xmltodict as any;
      assert.deepEqual(rec, {
        '@type': 'callLegEnd', '@time': 't', '@recordIndex': '1', '@correlatorIndex': '0',
        callLeg: { '@id': 'x', alarm: { '@type': 'packetLoss', '@durationPercentage': '1.4' }, ivr: null, durationSeconds: '5' },
      });
      const two = parseCdrDocument(mividasPosts()[8], 'xmltodict').records[0].xmltodict as any;
      assert.equal(two.callLeg.alarm.length, 2);
    });
  });

  describe('typed mode', () => {
    it('keeps all-digit names and addresses as text and passes unknown types and fields through', () => {
      const xml = `<records session="s"><record type="meetingInsight" time="2026-01-01T00:00:00Z" recordIndex="7" correlatorIndex="9" futureAttr="x">
        <insight id="i1"><score>17</score><flag>true</flag></insight></record>
        <record type="callLegStart" time="2026-01-01T00:00:01Z" recordIndex="8" correlatorIndex="10">
        <callLeg id="l1"><remoteParty>0123456789</remoteParty><displayName>true</displayName><guestConnection>true</guestConnection><subType>webApp</subType></callLeg></record></records>`;
      const [unknown, leg] = parseCdrDocument(xml).records;
      assert.equal(unknown.type, 'meetingInsight');
      assert.equal(unknown.objectType, 'insight');
      assert.deepEqual(unknown.body, { insight: { id: 'i1', score: '17', flag: true }, attributes: { futureAttr: 'x' } });
      const l = leg.body.callLeg as Record<string, unknown>;
      assert.equal(l.remoteParty, '0123456789');
      assert.equal(l.displayName, 'true');
      assert.equal(l.guestConnection, true);
    });

    it('reads numPreceedingRecordsMissing (Cisco spelling)', () => {
      const xml = envelope('<record type="callStart" time="t" recordIndex="5" correlatorIndex="4" numPreceedingRecordsMissing="12"><call id="c"/></record>');
      assert.equal(parseCdrDocument(xml).records[0].numPrecedingRecordsMissing, 12);
      assert.equal(parseCdrDocument(envelope('<record type="callStart" time="t" recordIndex="5" correlatorIndex="4"><call id="c"/></record>')).records[0].numPrecedingRecordsMissing, 0);
    });

    it('decodes the XML built-in entities and character references once, in both modes', () => {
      const xml = envelope('<record type="callStart" time="t" recordIndex="1" correlatorIndex="0"><call id="c&amp;1"><name>R&amp;D &lt;restricted&gt; &#233;&#x1F600; &amp;#233; &quot;q&apos;</name></call></record>');
      const name = 'R&D <restricted> é\u{1F600} &#233; "q\'';
      const typed = parseCdrDocument(xml).records[0];
      assert.equal((typed.body.call as Record<string, unknown>).name, name);
      assert.equal(typed.id, 'c&1');
      const dict = parseCdrDocument(xml, 'xmltodict').records[0].xmltodict as any;
      assert.equal(dict.call.name, name);
      assert.equal(dict.call['@id'], 'c&1');
    });

    it('accepts an empty <records/> document with no records', () => {
      assert.deepEqual(parseCdrDocument('<records session="s"/>').records, []);
    });
  });

  describe('hostile input', () => {
    const codeOf = (body: string | Buffer) => {
      try {
        parseCdrDocument(body);
        return 'ok';
      } catch (err) {
        if (!(err instanceof CdrParseError)) throw err;
        return err.code;
      }
    };

    it('refuses DTDs and entity declarations without expanding anything', () => {
      const bomb = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
        <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><records session="s"><record type="callStart" time="t" recordIndex="1" correlatorIndex="0"><call id="c"><name>&lol3;</name></call></record></records>`;
      assert.equal(codeOf(bomb), 'dtd');
      const external = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><records><record type="x"><call id="c"><name>&xxe;</name></call></record></records>';
      assert.equal(codeOf(external), 'dtd');
    });

    it('refuses truncated documents, other roots, empty bodies and non-XML', () => {
      const full = mividasPosts()[0];
      for (let cut = 1; cut < full.length - 1; cut += 7) {
        assert.notEqual(codeOf(full.slice(0, cut)), 'ok', `truncated at ${cut}`);
      }
      assert.equal(codeOf('<recordz session="s"/>'), 'root');
      assert.equal(codeOf(''), 'empty');
      assert.equal(codeOf('   \n'), 'empty');
      assert.equal(codeOf('{"records":[]}'), 'malformed');
      assert.equal(codeOf('messageText=hello'), 'malformed');
    });

    it('never throws anything but CdrParseError on random byte mutations of the real posts', () => {
      // deterministic PRNG so a failure can be replayed
      let seed = 0x2f6b1c3d;
      const rand = () => {
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        return (seed >>> 0) / 0x100000000;
      };
      const posts = mividasPosts().map((p) => Buffer.from(p));
      let accepted = 0;
      let refused = 0;
      for (let i = 0; i < 3000; i++) {
        const buf = Buffer.from(posts[i % posts.length]);
        const edits = 1 + Math.floor(rand() * 4);
        for (let e = 0; e < edits; e++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
        if (codeOf(buf) === 'ok') accepted++;
        else refused++;
      }
      assert.ok(accepted > 0 && refused > 0, `accepted ${accepted}, refused ${refused}`);
    });
  });

  describe('objects from the ordered tree', () => {
    // fast-xml-parser's own object step, with the options parse.ts used before it read the ordered tree
    const reference = new XMLParser({
      ignoreAttributes: false, attributeNamePrefix: '@', textNodeName: '#text', parseTagValue: false, parseAttributeValue: false,
      trimValues: true, ignoreDeclaration: true, ignorePiTags: true, processEntities: false,
      isArray: (name, jPath) => name === 'record' && typeof jPath === 'string' && jPath.split('.').length === 2,
    });
    // the same objects, or the same error (the parser refuses a few things the validator lets through)
    const outcome = (parse: () => unknown) => {
      try {
        return JSON.stringify(parse());
      } catch (err) {
        return `error: ${(err as Error).message}`;
      }
    };
    const same = (doc: string) => assert.equal(outcome(() => xmlObjects(doc)), outcome(() => reference.parse(doc)), doc.slice(0, 300));

    it('gives fast-xml-parser\'s objects, key order included, for every fixture document', () => {
      const docs = [...mividasPosts()];
      for (const dir of [path.join(sharedFixtures, 'cms'), path.join(sharedFixtures, 'cms', 'official-doc-example_cms-2.0-cdr-guide')]) {
        for (const f of fs.readdirSync(dir)) if (f.endsWith('.xml')) docs.push(fs.readFileSync(path.join(dir, f), 'utf8'));
      }
      assert.ok(docs.length > 15, `${docs.length} documents`);
      for (const d of docs) same(d);
    });

    it('matches on mixed content, empty and repeated elements, attributes with text, and odd names', () => {
      same('<a x="1">t<b/>u<b>v</b><c></c><d y="2"/><e z="3">w</e><constructor>1</constructor><toString/><b/></a>');
      same('<records><record/></records>');
      same('<records a="1"><record a="1"/><record>x</record><x><record/><record/></x> tail </records>');
      same('<records> <!-- c --> <record><![CDATA[ x ]]></record>text<?pi x?></records>');
      same('<other><record/></other>');
    });

    it('matches on thousands of mutated documents that still pass the validator', () => {
      let seed = 0x51a7e5ed;
      const rand = (n: number) => {
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        return Math.floor(((seed >>> 0) / 0x100000000) * n);
      };
      const posts = mividasPosts();
      const pieces = ['<', '>', '/', '=', '"', ' ', 'a', '<b>', '</b>', '<c/>', '&amp;', '<record>', '</record>', '<!-- x -->'];
      let checked = 0;
      for (let i = 0; i < 20000; i++) {
        let d = posts[i % posts.length];
        for (let e = 0, edits = 1 + rand(3); e < edits; e++) {
          const at = rand(d.length);
          d = rand(2) ? d.slice(0, at) + pieces[rand(pieces.length)] + d.slice(at) : d.slice(0, at) + d.slice(at + 1 + rand(30));
        }
        if (XMLValidator.validate(d) !== true) continue;
        checked++;
        same(d);
      }
      assert.ok(checked > 1000, `${checked} valid mutants`);
    });
  });
});
