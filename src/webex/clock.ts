/**
 * Time as the Webex modules see it. Everything that waits or reads "now" goes through a Clock, so
 * tests can run hours of rate-limited syncing against the simulator without waiting for real minutes.
 */
import { sleep } from '../common/http';

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => (ms <= 0 ? (signal?.aborted ? Promise.reject(signal.reason ?? new Error('aborted')) : Promise.resolve()) : sleep(ms, signal)),
};
