/** What every mapper is told besides the source record. */
export interface MapOptions {
  /** When the node saw the message, UTC ISO with Z. */
  observedAt: string;
  /** Keep the untouched source record in `raw`. */
  keepRaw: boolean;
  /** source_instance when the source message names none (CMS without callBridge, Webex without Org UUID). */
  instance?: string;
  /** IANA zone of CC-FS local times (the tenant's); when set the bill-file cells are read again with it so DST ambiguity can be flagged. */
  zone?: string;
}
