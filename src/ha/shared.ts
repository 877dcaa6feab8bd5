/** What a `cdrflow-redis` configuration shares with the nodes that chose it as their shared state. */
import type { SharedRedis } from './connection';
import type { Claims } from './claim';

export interface SharedState {
  redis: SharedRedis;
  claims: Claims;
  /** How long a confirmed claim is kept (ms): resends within it are recognised. */
  dedupMs: number;
}
