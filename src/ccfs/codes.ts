/** CC-FS result codes (specs/ccfs.md §9; Huawei CC-FS Interface Reference 25.300.1 §5.1). */

export interface ResultCodeInfo {
  meaning: string;
  /** Worth asking again later (flow control, file not ready, transient server trouble). */
  retryable: boolean;
}

const TABLE: Record<string, ResultCodeInfo> = {
  '0': { meaning: 'success', retryable: false },
  '0300001': { meaning: 'a parameter is null', retryable: false },
  '0300002': { meaning: 'a parameter is an empty string', retryable: false },
  '0300003': { meaning: 'a parameter is too long', retryable: false },
  '0300004': { meaning: 'a parameter has the wrong format', retryable: false },
  '0300005': { meaning: 'a parameter is too short', retryable: false },
  '0300006': { meaning: 'wrong version (the server names its version in the description)', retryable: false },
  '0300007': { meaning: 'request body parameters are missing', retryable: false },
  '0300008': { meaning: 'download flow-control threshold reached: try later', retryable: true },
  '0300009': { meaning: 'query flow-control threshold reached: try later', retryable: true },
  '0300010': { meaning: 'the date part of the file name is malformed', retryable: false },
  '0300011': { meaning: 'the file does not exist (yet?)', retryable: true },
  '0300012': { meaning: 'no data found', retryable: false },
  '0300013': { meaning: 'beginTime is later than endTime', retryable: false },
  '0300014': { meaning: 'the time window is longer than the server allows (default 3 days)', retryable: false },
  '0300015': { meaning: "the server's local store or voice path is missing (server configuration)", retryable: false },
  '0300016': { meaning: 'a time value is later than now (check the tenant time zone)', retryable: false },
  '0300017': { meaning: 'several matches: give ccId', retryable: false },
  '0300018': { meaning: 'the record belongs to another developer (wrong appId / AK)', retryable: false },
  '0300019': { meaning: 'fileName or callId is required', retryable: false },
  '0300020': { meaning: 'one record expected, several found', retryable: false },
  '0300021': { meaning: 'file name components do not match the directory', retryable: false },
  '0300022': { meaning: 'illegal characters in a parameter', retryable: false },
  '0300023': { meaning: 'IVR message path does not match the configuration', retryable: false },
  '0300024': { meaning: 'the path is not canonical', retryable: false },
  '0300025': { meaning: 'internal system error', retryable: true },
  '0300026': { meaning: 'authentication failed (accountId / VDN mismatch)', retryable: false },
  '0300027': { meaning: 'a parameter is empty', retryable: false },
  '0300028': { meaning: 'parameter error', retryable: false },
  '0300029': { meaning: 'file does not exist (playback)', retryable: false },
  '0300030': { meaning: 'system processing failure', retryable: true },
};

/** The meaning of a CC-FS result code; codes 0300031–0300049 are configuration errors for the operator. */
export function resultCodeInfo(code: string): ResultCodeInfo {
  const known = TABLE[code];
  if (known) return known;
  const n = /^03000(\d\d)$/.exec(code);
  if (n && Number(n[1]) >= 31 && Number(n[1]) <= 49) {
    return { meaning: 'IVR/OIAP file, upload, OBS/LSS or CTI-pool configuration error (operator)', retryable: false };
  }
  return { meaning: 'unknown result code', retryable: false };
}

/** Success is "0" as a string; the number 0 is tolerated. */
export function isSuccess(code: unknown): boolean {
  return code === '0' || code === 0;
}
