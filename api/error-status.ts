import { Codes, type ErrorCode, type ReplicantError } from '../core/errors.js'

/** The one table from error code to the HTTP status the API answers with. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  [Codes.BAD_PATH]: 400,
  [Codes.BAD_VOLUME_NAME]: 400,
  [Codes.BAD_SNAPSHOT_NAME]: 400,
  [Codes.BAD_REQUEST]: 400,
  [Codes.BAD_RANGE]: 416,
  [Codes.BAD_DUMP]: 400,
  [Codes.BAD_STATE]: 409,
  [Codes.BODY_TOO_LARGE]: 413,
  [Codes.FILE_TOO_LARGE]: 413,
  [Codes.METHOD_NOT_ALLOWED]: 405,
  [Codes.NO_ROUTE]: 404,
  [Codes.VOLUME_EXISTS]: 409,
  [Codes.VOLUME_NOT_FOUND]: 404,
  [Codes.VOLUME_ID_MISMATCH]: 409,
  [Codes.VOLUME_OFFLINE]: 503,
  [Codes.VOLUME_REMOVED]: 410,
  [Codes.FILE_NOT_FOUND]: 404,
  [Codes.SNAPSHOT_EXISTS]: 409,
  [Codes.SNAPSHOT_NOT_FOUND]: 404,
  [Codes.SNAPSHOT_IN_USE]: 409,
  [Codes.BASE_MISMATCH]: 409,
  [Codes.NOT_A_MEMBER]: 403,
  [Codes.MEMBER_NOT_FOUND]: 404,
  [Codes.ALREADY_MEMBER]: 409,
  [Codes.LAST_MEMBER]: 409,
  [Codes.MOVE_INTERRUPTED]: 502,
  [Codes.ILLEGAL_TRANSITION]: 500,
  [Codes.CHUNK_MISSING]: 503,
  [Codes.HASH_MISMATCH]: 502,
  [Codes.WRITE_NOT_ACKNOWLEDGED]: 503,
  [Codes.TX_DECIDED]: 409,
  [Codes.TX_UNKNOWN]: 409,
  [Codes.LOG_COMPACTED]: 502,
  [Codes.DATA_DIR_LOCKED]: 409,
  [Codes.STORE_CLOSED]: 503,
  [Codes.PACK_TRUNCATED]: 500,
  [Codes.NODE_NOT_RUNNING]: 503,
  [Codes.INTERNAL]: 500,
  // A malformed message is the sender's fault: 400 for an HTTP client's body; a peer's bad
  // message reaches an HTTP caller only inside another error.
  [Codes.BAD_MESSAGE]: 400,
  [Codes.MESSAGE_TOO_LARGE]: 502,
  [Codes.UNSUPPORTED_VERSION]: 502,
  [Codes.STREAM_CLOSED]: 502,
  [Codes.TRUNCATED]: 502,
  [Codes.LINK_DROPPED]: 502,
  [Codes.REMOTE_ERROR]: 502,
  [Codes.HTTP_ERROR]: 502,
  [Codes.TIMEOUT]: 504,
  // nginx's "client closed request": nobody is left to read it
  [Codes.ABORTED]: 499,
  [Codes.BAD_TOPOLOGY]: 500,
  [Codes.BAD_TOPOLOGY_CONFIG]: 500,
  [Codes.KILL_NEEDS_PROCESS]: 500,
  [Codes.NODE_DOWN]: 500,
  [Codes.NODE_RUNNING]: 500,
  [Codes.NO_TOPOLOGY]: 500,
  [Codes.START_FAILED]: 500,
  [Codes.TOPOLOGY_RUNNING]: 500,
  [Codes.UNKNOWN_NODE]: 500
}

export function httpStatusOf (err: ReplicantError): number {
  return HTTP_STATUS[err.code] ?? 500
}
