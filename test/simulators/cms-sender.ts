/**
 * A Cisco Meeting Server call bridge as a CDR sender (specs/cms.md §0.1, §1.1, §4): POSTs `<records>`
 * documents over one keep-alive connection, in sequence, and sends a batch again until it gets 200.
 */
import * as http from 'node:http';

export interface SenderOptions {
  /** Full receiver URI as configured in a CMS slot, e.g. http://127.0.0.1:1880/cdr?system_id=cb1 */
  url: string;
  /** Pause before a resend (CMS's own interval is undocumented). */
  retryDelayMs?: number;
  /** Give up on one batch after this many attempts (a real CMS buffers, then drops and counts). */
  maxAttempts?: number;
  headers?: Record<string, string>;
}

export interface SendResult {
  status: number;
  attempts: number;
}

export class CmsSender {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  readonly stats = { posts: 0, resends: 0, connectionErrors: 0, non200: 0 };

  constructor(private readonly opts: SenderOptions) {}

  /** Sends one document until it is acknowledged with 200. */
  async send(body: string): Promise<SendResult> {
    const max = this.opts.maxAttempts ?? 50;
    for (let attempt = 1; ; attempt++) {
      this.stats.posts++;
      if (attempt > 1) this.stats.resends++;
      try {
        const status = await this.postOnce(body);
        if (status === 200) return { status, attempts: attempt };
        this.stats.non200++;
        if (attempt >= max) return { status, attempts: attempt };
      } catch {
        this.stats.connectionErrors++;
        if (attempt >= max) return { status: 0, attempts: attempt };
      }
      await new Promise((r) => setTimeout(r, this.opts.retryDelayMs ?? 5));
    }
  }

  /** Sends the documents one after another, as a call bridge does on its connection. */
  async replay(bodies: string[]): Promise<SendResult[]> {
    const results: SendResult[] = [];
    for (const b of bodies) results.push(await this.send(b));
    return results;
  }

  close(): void {
    this.agent.destroy();
  }

  private postOnce(body: string): Promise<number> {
    const u = new URL(this.opts.url);
    const payload = Buffer.from(body, 'utf8');
    return new Promise((resolve, reject) => {
      const req = http.request({
        agent: this.agent,
        method: 'POST',
        hostname: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        auth: u.username ? `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}` : undefined,
        headers: { 'content-type': 'text/xml', 'content-length': payload.length, ...this.opts.headers },
      }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }
}

/** Synthetic traffic: `count` documents of 1–3 records each with consecutive indexes in one session. */
export function syntheticPosts(count: number, session: string, startIndex = 1, seed = 7): string[] {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const posts: string[] = [];
  let index = startIndex;
  for (let p = 0; p < count; p++) {
    const n = 1 + Math.floor(rand() * 3);
    let records = '';
    for (let i = 0; i < n; i++, index++) {
      const leg = `0000${index.toString(16)}`.slice(-4);
      records += `<record type="callLegEnd" time="2026-11-23T10:00:00Z" recordIndex="${index}" correlatorIndex="${index - 1}">` +
        `<callLeg id="aaaaaaaa-bbbb-4ccc-8ddd-00000000${leg}"><reason>remoteTeardown</reason><remoteTeardown>true</remoteTeardown>` +
        `<durationSeconds>${index % 3600}</durationSeconds></callLeg></record>`;
    }
    posts.push(`<?xml version="1.0"?><records session="${session}">${records}</records>`);
  }
  return posts;
}
