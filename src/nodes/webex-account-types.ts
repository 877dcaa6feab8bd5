/** What a webex-account config node shares with webex-cdr-pull: `node.cdrflow.get()` (lib/config.ts). */
import type { Node } from 'node-red';
import type { Agent } from 'undici';
import type { TokenManager, TokenSet } from '../webex/oauth';
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

/** Where the tokens of a new authorization went: in use at once, or only after the next deploy. */
export type AdoptOutcome = 'applied' | 'afterDeploy';

/** What a deployed webex-account offers the authorization routes. */
export interface AuthorizeTarget {
  /** The token URL it was deployed with (a stored client secret is only ever sent there). */
  tokenUrl: string;
  /**
   * Tokens from an authorization with `client`: used at once (saved to the token file and the
   * credentials, then handed to the running token manager) when the account runs with that very
   * client and token URL; otherwise left for the deploy.
   */
  adopt(client: { clientId: string; clientSecret: string; tokenUrl: string }, tokens: TokenSet): Promise<AdoptOutcome>;
}

export type WebexAccountNode = ConfigNode<WebexAccount> & Node<WebexCredentials> & { cdrflowAuth?: AuthorizeTarget };
