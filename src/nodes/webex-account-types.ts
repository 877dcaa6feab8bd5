/** What a webex-account config node shares with webex-cdr-pull: `node.cdrflow.get()` (lib/config.ts). */
import type { Node } from 'node-red';
import type { Agent } from 'undici';
import type { TokenManager } from '../webex/oauth';
import type { RateLimiter } from '../webex/client';
import type { Clock } from '../webex/clock';
import type { ConfigNode } from './lib/config';

export interface WebexCredentials {
  clientId?: string;
  clientSecret?: string;
  refreshToken?: string;
  accessToken?: string;
}

export interface WebexAccount {
  /** Resolves (never rejects) once the saved tokens were loaded; `tokens` is final from then on. */
  ready: Promise<void>;
  tokens: TokenManager;
  limiter: RateLimiter;
  dispatcher: Agent;
  clock: Clock;
  /** 451 may move requests to another host: auto (Webex hosts) and custom (same host name). */
  followRegion: boolean;
  trustHostname?: string;
  /** The base URL to use now: a host learnt from a 451, or the configured one. */
  currentBaseUrl(): string;
  /** Remembers (and saves) the host a 451 named. */
  learnBaseUrl(url: string): void;
}

export type WebexAccountNode = ConfigNode<WebexAccount> & Node<WebexCredentials>;
