/**
 * The bill-file jobs of a callback receiver, run in the background (specs/ccfs.md §4.3: answer before
 * doing the download). A job is journaled as pending before the callback is answered 200; the runner
 * then works it (download, parse, send on), one at a time, and journals how it ended:
 * - done: the file is a delivered one; a later callback for it is a duplicate;
 * - a failure worth another attempt (flow control, the file not there yet, the network, a broken
 *   transfer): tried again after an exponential backoff with jitter, at most `retries` times;
 * - a failure that another attempt cannot mend (a CC-FS result code that says so): failed, kept as such;
 * - the account signs nothing (CC-FS refused it) or cannot be used: held, still pending, and tried
 *   again at the next start (when the account was deployed again);
 * - the receiver stopping: the running job is aborted and stays pending, resumed at the next start.
 * "Exactly once": a job is created once per bill file, and a done job never runs again. A job cut off
 * in the middle (a kill while its rows were being sent) runs again from the start of the file, so the
 * rows of that file can come twice: at-least-once for a partly sent file.
 */
import { backoffDelay } from '../common/http';
import { CcfsAuthError, CcfsResultError, CcfsValidationError } from './client';
import { CcfsLockedError } from './lockout';
import type { BillJob } from './callback';

export type Verdict = 'retry' | 'fail' | 'hold';

/** How a job's failure is taken: CC-FS result codes by their table, the lock-out and refusals held, the rest retried. */
export function jobVerdict(err: unknown): Verdict {
  if (err instanceof CcfsLockedError || err instanceof CcfsAuthError) return 'hold';
  if (err instanceof CcfsResultError) return err.retryable ? 'retry' : 'fail';
  if (err instanceof CcfsValidationError) return 'fail';
  return 'retry';
}

/** What happened to a job: it started, is done, waits `delayMs` for a retry, failed, is held, or could not be journaled. */
export interface JobEvent {
  type: 'start' | 'done' | 'retry' | 'failed' | 'held' | 'saveFailed';
  job: BillJob;
  /** Why (retry, failed, held, saveFailed). */
  error?: unknown;
  delayMs?: number;
}

export interface JobRunnerOptions {
  /** Further attempts after the first, for failures worth retrying. */
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Downloads, parses and sends on one job's file; rejects on failure; `signal` aborts it (the receiver stops). */
  work(job: BillJob, signal: AbortSignal): Promise<void>;
  /** Default jobVerdict. */
  verdict?(err: unknown): Verdict;
  /** Journals a job as it now is, or (`done`) the file as delivered; resolves once durable. */
  save(change: { job: BillJob } | { done: string }): Promise<void> | void;
  onEvent?(e: JobEvent): void;
  random?: () => number;
}

export interface JobCounts {
  /** Waiting for their turn, or for their next attempt. */
  pending: number;
  running: string | null;
  /** Waiting for the account (held until the next start). */
  held: number;
}

export class JobRunner {
  private readonly queue: BillJob[] = [];
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly waiting = new Map<string, BillJob>();
  private readonly held = new Set<string>();
  private readonly controller = new AbortController();
  private active: Promise<void> | null = null;
  /** The job whose turn it is (from its start until its end is saved). */
  private current: string | null = null;
  /** The job being worked on (until its work ends). */
  private working: string | null = null;
  private closed = false;

  constructor(private readonly opts: JobRunnerOptions) {}

  /** A pending job (already journaled) to run when its turn comes. Ignored when it is already here. */
  add(job: BillJob): void {
    if (this.closed || this.has(job.file)) return;
    this.queue.push(job);
    this.pump();
  }

  has(file: string): boolean {
    return this.current === file || this.waiting.has(file) || this.held.has(file) || this.queue.some((j) => j.file === file);
  }

  get counts(): JobCounts {
    return { pending: this.queue.length + this.waiting.size, running: this.working, held: this.held.size };
  }

  /** Aborts the running job (it stays pending), cancels the waits; resolves when nothing runs. */
  async close(): Promise<void> {
    this.closed = true;
    this.controller.abort(new Error('the receiver is stopping'));
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await this.active;
  }

  private pump(): void {
    if (this.active || this.closed) return;
    const job = this.queue.shift();
    if (!job) return;
    this.current = job.file;
    this.active = this.run(job).finally(() => {
      this.active = null;
      this.current = null;
      this.pump();
    });
  }

  private async save(job: BillJob, change: { job: BillJob } | { done: string }): Promise<void> {
    try {
      await this.opts.save(change);
    } catch (error) {
      this.opts.onEvent?.({ type: 'saveFailed', job, error });
    }
  }

  private async run(job: BillJob): Promise<void> {
    this.working = job.file;
    this.opts.onEvent?.({ type: 'start', job });
    try {
      await this.opts.work(job, this.controller.signal);
    } catch (error) {
      this.working = null;
      if (this.closed) return; // stopped: still pending, resumed at the next start
      const verdict = (this.opts.verdict ?? jobVerdict)(error);
      const message = (error as Error)?.message ?? String(error);
      if (verdict === 'hold') {
        // not an attempt: nothing was asked of CC-FS, or it refused the account
        this.held.add(job.file);
        await this.save(job, { job: { ...job, error: message } });
        this.opts.onEvent?.({ type: 'held', job, error });
        return;
      }
      job.attempts++;
      job.error = message;
      if (verdict === 'retry' && job.attempts <= this.opts.retries) {
        await this.save(job, { job: { ...job } });
        const delayMs = backoffDelay(job.attempts - 1, { baseDelayMs: this.opts.baseDelayMs, maxDelayMs: this.opts.maxDelayMs, random: this.opts.random });
        this.waiting.set(job.file, job);
        this.timers.set(job.file, setTimeout(() => {
          this.timers.delete(job.file);
          this.waiting.delete(job.file);
          this.queue.push(job);
          this.pump();
        }, delayMs));
        this.opts.onEvent?.({ type: 'retry', job, error, delayMs });
        return;
      }
      job.state = 'failed';
      await this.save(job, { job: { ...job } });
      this.opts.onEvent?.({ type: 'failed', job, error });
      return;
    }
    this.working = null;
    job.attempts++;
    await this.save(job, { done: job.file });
    this.opts.onEvent?.({ type: 'done', job });
  }
}
