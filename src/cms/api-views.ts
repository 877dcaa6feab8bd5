/**
 * What the CMS REST API answers about live calls (specs/cms.md §6), read from its XML: the call list
 * (`GET /api/v1/calls` → `<calls total="N"><call id>…`), one call (`GET /api/v1/calls/<id>`, with the
 * message on screen), a call's legs (`GET /api/v1/calls/<id>/callLegs` → `<callLegs total="N">…`) and
 * one leg (`GET /api/v1/callLegs/<id>`, with `type` and `subType`). Pure: text in, plain objects out.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { text } from './record';

/** An item of a paged list, and the list's `total` attribute. */
export interface ApiPage<T> {
  total: number;
  items: T[];
}

/** A call as the call list gives it. */
export interface ApiCallItem {
  id: string;
  name: string | null;
  coSpace: string | null;
  callCorrelator: string | null;
}

/** One call: what the list gives, and the message on screen (`messageText` is left out when empty). */
export interface ApiCallDetail extends ApiCallItem {
  messageText: string;
  messagePosition: string | null;
  messageDuration: string | null;
}

/** A leg as a call's leg list gives it. */
export interface ApiLegItem {
  id: string;
  name: string | null;
  remoteParty: string | null;
  call: string | null;
}

/** One leg: `type` (sip, acano, …) and `subType` (webApp, distributionLink, …) come only from here. */
export interface ApiLegDetail extends ApiLegItem {
  remoteAddress: string | null;
  type: string | null;
  subType: string | null;
}

/** An answer that is not the XML this module expects. */
export class ApiAnswerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApiAnswerError';
  }
}

const LISTS = new Set(['calls.call', 'callLegs.callLeg']);
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  isArray: (_name, jpath) => LISTS.has(String(jpath)),
});

function parse(xml: string, root: string): Record<string, unknown> {
  // nothing the API sends declares entities: refusing a DTD keeps any expansion out
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new ApiAnswerError('a DTD in the answer');
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new ApiAnswerError(`not XML (${valid.err.msg}, line ${valid.err.line})`);
  const doc = parser.parse(xml) as Record<string, unknown>;
  const el = doc[root];
  if (el === undefined) throw new ApiAnswerError(`expected <${root}>, got <${Object.keys(doc).filter((k) => !k.startsWith('?')).join('>, <') || 'nothing'}>`);
  // `<calls total="0"></calls>` and `<call id="x"/>` parse to '' with no children
  return el && typeof el === 'object' ? (el as Record<string, unknown>) : {};
}

function idOf(el: Record<string, unknown>, what: string): string {
  const id = text(el['@id']);
  if (!id) throw new ApiAnswerError(`a ${what} without id`);
  return id;
}

function page<T>(xml: string, root: string, item: string, read: (el: Record<string, unknown>) => T): ApiPage<T> {
  const el = parse(xml, root);
  const total = Number(text(el['@total']));
  if (!Number.isInteger(total) || total < 0) throw new ApiAnswerError(`<${root}> without a total`);
  const items = (el[item] as unknown[] | undefined) ?? [];
  return { total, items: items.map((i) => read(i && typeof i === 'object' ? (i as Record<string, unknown>) : {})) };
}

function callItem(el: Record<string, unknown>): ApiCallItem {
  return { id: idOf(el, 'call'), name: text(el.name), coSpace: text(el.coSpace), callCorrelator: text(el.callCorrelator) };
}

function legItem(el: Record<string, unknown>): ApiLegItem {
  return { id: idOf(el, 'call leg'), name: text(el.name), remoteParty: text(el.remoteParty), call: text(el.call) };
}

/** `GET /api/v1/calls` */
export function parseCallList(xml: string): ApiPage<ApiCallItem> {
  return page(xml, 'calls', 'call', callItem);
}

/** `GET /api/v1/calls/<id>` */
export function parseCall(xml: string): ApiCallDetail {
  const el = parse(xml, 'call');
  return {
    ...callItem(el),
    // the message text is kept as shown (only surrounding white space trimmed)
    messageText: text(el.messageText) ?? '',
    messagePosition: text(el.messagePosition),
    messageDuration: text(el.messageDuration),
  };
}

/** `GET /api/v1/calls/<id>/callLegs` */
export function parseLegList(xml: string): ApiPage<ApiLegItem> {
  return page(xml, 'callLegs', 'callLeg', legItem);
}

/** `GET /api/v1/callLegs/<id>` */
export function parseLeg(xml: string): ApiLegDetail {
  const el = parse(xml, 'callLeg');
  return { ...legItem(el), remoteAddress: text(el.remoteAddress), type: text(el.type), subType: text(el.subType) };
}
