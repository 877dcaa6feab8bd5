/**
 * A mail server on 127.0.0.1 for tests (the smtp-server package): AUTH PLAIN/LOGIN checked against one
 * user, no STARTTLS (loopback only), every message kept as it came (envelope and raw MIME) and parsed
 * with mailparser, the parser node-red-node-email itself depends on. It can stop and start again on the
 * same port, as a mail server that is down for a while.
 */
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

// node-red-node-email bundles mailparser; it is not a dependency of this package
const { simpleParser } = require(require.resolve('mailparser', { paths: [path.dirname(require.resolve('node-red-node-email/package.json'))] }));

export interface ReceivedMail {
  /** MAIL FROM and RCPT TO of the SMTP session */
  envelopeFrom: string;
  envelopeTo: string[];
  /** the user that logged in */
  user: string | undefined;
  raw: string;
  subject: string;
  /** header From: address and display name */
  from: { address: string; name: string };
  /** header To: addresses */
  to: string[];
  html: string;
  text: string;
  /** content types of the MIME parts, in order (multipart/alternative, text/plain, text/html) */
  parts: string[];
}

export class SmtpSink {
  readonly mails: ReceivedMail[] = [];
  /** AUTH attempts refused (wrong user or password) */
  refusedLogins = 0;
  port = 0;
  private server: SMTPServer | null = null;

  constructor(private readonly user: string, private readonly password: string) {}

  /** Listens on a free port, or on the port it had before a stop(). */
  async start(): Promise<this> {
    const server = new SMTPServer({
      secure: false,
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      authMethods: ['PLAIN', 'LOGIN'],
      closeTimeout: 200,
      logger: false,
      onAuth: (auth, _session, cb) => {
        if (auth.username === this.user && auth.password === this.password) return cb(null, { user: auth.username });
        this.refusedLogins++;
        cb(new Error('Invalid username or password'));
      },
      onData: (stream, session, cb) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          simpleParser(raw).then((p: any) => {
            const mailFrom = session.envelope.mailFrom;
            this.mails.push({
              envelopeFrom: mailFrom ? mailFrom.address : '',
              envelopeTo: session.envelope.rcptTo.map((r) => r.address),
              user: session.user as string | undefined,
              raw,
              subject: p.subject ?? '',
              from: { address: p.from?.value[0]?.address ?? '', name: p.from?.value[0]?.name ?? '' },
              to: [].concat(p.to ?? []).flatMap((t: any) => t.value.map((v: any) => v.address)),
              html: typeof p.html === 'string' ? p.html : '',
              text: p.text ?? '',
              parts: [...raw.matchAll(/^Content-Type:\s*([^;\s]+)/gim)].map((m) => m[1].toLowerCase()),
            });
            cb();
          }, cb);
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  /** Stops listening and drops open sessions: clients get "connection refused" until start(). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get running(): boolean {
    return this.server !== null;
  }

  reset(): void {
    this.mails.length = 0;
    this.refusedLogins = 0;
  }
}
