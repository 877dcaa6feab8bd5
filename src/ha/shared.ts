/** What a `cdrflow-redis` configuration shares with the nodes that chose it as their shared state. */
import type { SharedRedis } from './connection';
import type { Claims } from './claim';

export interface SharedState {
  redis: SharedRedis;
  claims: Claims;
  /** How long a confirmed claim is kept (ms): resends within it are recognised. */
  dedupMs: number;
  /**
   * A node that will still write through the connection when it closes (a last state save, a lease
   * release) holds it: Node-RED stops config nodes together with their users, and the connection is
   * closed only once every holder let go (or after a few seconds). Returns the function that lets go.
   */
  hold(): () => void;
}
