/**
 * A Slack incoming webhook on 127.0.0.1 for tests. POST <path> with a JSON body is checked against
 * Block Kit's rules (https://api.slack.com/reference/block-kit/blocks, .../composition-objects): a
 * `text` fallback, `blocks` an array of 1 to 50, a header's plain_text at most 150 characters, a
 * section's text at most 3000, at most 10 fields of at most 2000, a context of at most 10 elements,
 * every text object plain_text or mrkdwn (emoji only on plain_text). It answers as Slack does: 200 `ok`,
 * 400 `invalid_payload` / `no_text` / `invalid_blocks`, 404 `no_service` on another path, and, when a
 * test rate-limits it, 429 with Retry-After (seconds) to every post until those seconds have passed
 * (a client that posts again before then gets 429 again, with the seconds left).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackPost {
  /** when the request was answered (ms since the epoch) */
  at: number;
  status: number;
  contentType: string | undefined;
  body: any;
  problems: string[];
}

const TEXT_TYPES = ['plain_text', 'mrkdwn'];

function textProblems(where: string, t: any, max: number, types = TEXT_TYPES): string[] {
  if (!t || typeof t !== 'object') return [`${where}: no text object`];
  const out: string[] = [];
  if (!types.includes(t.type)) out.push(`${where}: type ${t.type} (expected ${types.join(' or ')})`);
  if (typeof t.text !== 'string' || t.text.length === 0) out.push(`${where}: empty text`);
  else if (t.text.length > max) out.push(`${where}: ${t.text.length} characters (at most ${max})`);
  if ('emoji' in t && t.type !== 'plain_text') out.push(`${where}: emoji on ${t.type}`);
  return out;
}

/** What Slack would refuse in a webhook payload, or [] when it is valid Block Kit with a text fallback. */
export function blockKitProblems(body: any): string[] {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return ['not a JSON object'];
  const out: string[] = [];
  if (typeof body.text !== 'string' || body.text.trim() === '') out.push('no text fallback');
  if (!Array.isArray(body.blocks) || body.blocks.length === 0) return [...out, 'no blocks array'];
  if (body.blocks.length > 50) out.push(`${body.blocks.length} blocks (at most 50)`);
  body.blocks.forEach((b: any, i: number) => {
    const at = `block ${i} (${b?.type})`;
    if (b?.block_id !== undefined && (typeof b.block_id !== 'string' || b.block_id.length > 255)) out.push(`${at}: block_id`);
    switch (b?.type) {
      case 'header':
        out.push(...textProblems(at, b.text, 150, ['plain_text']));
        break;
      case 'section':
        if (b.text === undefined && b.fields === undefined) out.push(`${at}: neither text nor fields`);
        if (b.text !== undefined) out.push(...textProblems(at, b.text, 3000));
        if (b.fields !== undefined) {
          if (!Array.isArray(b.fields) || b.fields.length === 0 || b.fields.length > 10) out.push(`${at}: ${b.fields?.length} fields (1 to 10)`);
          else b.fields.forEach((f: any, j: number) => out.push(...textProblems(`${at} field ${j}`, f, 2000)));
        }
        break;
      case 'context':
        if (!Array.isArray(b.elements) || b.elements.length === 0 || b.elements.length > 10) out.push(`${at}: ${b.elements?.length} elements (1 to 10)`);
        else b.elements.forEach((e: any, j: number) => out.push(...textProblems(`${at} element ${j}`, e, 3000)));
        break;
      case 'divider':
        break;
      default:
        out.push(`${at}: not a block type this sink knows`);
    }
  });
  return out;
}

export class SlackSink {
  /** every request, in the order answered */
  readonly posts: SlackPost[] = [];
  readonly path = '/services/T0CDRFLOW/B0ALERTS/cdrflowtestsecret';
  private server: http.Server | null = null;
  /** Retry-After of the rate limit the next post starts, or null */
  private limitNext: number | null = null;
  /** posts before this time (ms since the epoch) are answered 429 */
  private limitedUntil = 0;

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.answer(req, Buffer.concat(chunks).toString('utf8'), res));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}${this.path}`;
  }

  /**
   * Rate-limits the webhook from the next post on, as Slack does: that post and every post in the next
   * `seconds` are answered 429 with `Retry-After` (the whole seconds left); then posts are taken again.
   */
  rateLimitNext(seconds: number): void {
    this.limitNext = seconds;
  }

  /** The bodies Slack accepted, in order. */
  accepted(): any[] {
    return this.posts.filter((p) => p.status === 200).map((p) => p.body);
  }

  reset(): void {
    this.posts.length = 0;
    this.limitNext = null;
    this.limitedUntil = 0;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    const closed = new Promise((r) => server.close(r));
    server.closeAllConnections();
    await closed;
  }

  private answer(req: http.IncomingMessage, text: string, res: http.ServerResponse): void {
    let body: any = null;
    let status = 200;
    let reply = 'ok';
    let problems: string[] = [];
    const headers: Record<string, string> = { 'content-type': 'text/html' };
    try {
      body = JSON.parse(text);
    } catch {
      problems = ['not JSON'];
    }
    const now = Date.now();
    if (this.limitNext !== null && req.method === 'POST' && req.url === this.path) {
      this.limitedUntil = now + this.limitNext * 1000;
      this.limitNext = null;
    }
    if (req.method !== 'POST' || req.url !== this.path) [status, reply] = [404, 'no_service'];
    else if (now < this.limitedUntil) {
      headers['retry-after'] = String(Math.ceil((this.limitedUntil - now) / 1000));
      [status, reply] = [429, 'rate_limited'];
    } else {
      problems = problems.length ? problems : blockKitProblems(body);
      if (problems.length) [status, reply] = [400, body === null ? 'invalid_payload' : problems.includes('no text fallback') ? 'no_text' : 'invalid_blocks'];
    }
    this.posts.push({ at: now, status, contentType: req.headers['content-type'], body, problems });
    res.writeHead(status, headers);
    res.end(reply);
  }
}
