/** The runtime shape of a webex-account config node, as webex-cdr-pull uses it. */
import type { Node } from 'node-red';
import type { Agent } from 'undici';
import type { TokenManager } from '../webex/oauth';
import type { RateLimiter, Region } from '../webex/client';
import type { Clock } from '../webex/clock';

export interface WebexCredentials {
  clientId?: string;
  clientSecret?: string;
  refreshToken?: string;
  accessToken?: string;
}

export interface WebexAccountNode extends Node<WebexCredentials> {
  /** Resolves once stored tokens were loaded; the fields below are set from then on. */
  ready: Promise<void>;
  tokens: TokenManager;
  limiter: RateLimiter;
  dispatcher: Agent;
  clock: Clock;
  /** Configured base URL; an error text instead when the configuration is unusable. */
  baseUrl: string;
  configError: string | null;
  region: Region;
  /** 451 may move requests to another host: auto (Webex hosts) and custom (same host name). */
  followRegion: boolean;
  trustHostname?: string;
  /** The base URL to use now: a host learnt from a 451, or the configured one. */
  currentBaseUrl(): string;
  /** Remembers (and persists) the host a 451 named. */
  learnBaseUrl(url: string): void;
}

