/**
 * Every error the project raises on purpose is a ReplicantError with a stable upper-case
 * `code` from the registry below (messages may change, codes do not). Errors carry no HTTP
 * status: the API maps codes to statuses in one table (api/error-status.ts).
 */

/** The registry: every code the project raises, once. */
export const Codes = {
  // input
  BAD_PATH: 'BAD_PATH',
  BAD_VOLUME_NAME: 'BAD_VOLUME_NAME',
  BAD_SNAPSHOT_NAME: 'BAD_SNAPSHOT_NAME',
  BAD_REQUEST: 'BAD_REQUEST',
  BAD_RANGE: 'BAD_RANGE',
  BAD_DUMP: 'BAD_DUMP',
  /** A tar stream that does not parse (import). */
  BAD_ARCHIVE: 'BAD_ARCHIVE',
  /** A tar entry that is not a regular file or a directory (symlink, hard link, device, fifo). */
  UNSUPPORTED_ENTRY: 'UNSUPPORTED_ENTRY',
  BAD_STATE: 'BAD_STATE',
  BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FILE_TOO_LARGE: 'FILE_TOO_LARGE',
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  NO_ROUTE: 'NO_ROUTE',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  // HTTP API access
  UNAUTHORIZED: 'UNAUTHORIZED',
  RATE_LIMITED: 'RATE_LIMITED',
  HOST_REFUSED: 'HOST_REFUSED',
  NO_API_TOKEN: 'NO_API_TOKEN',
  API_INSECURE: 'API_INSECURE',
  // volumes, files, snapshots
  VOLUME_EXISTS: 'VOLUME_EXISTS',
  VOLUME_NOT_FOUND: 'VOLUME_NOT_FOUND',
  VOLUME_ID_MISMATCH: 'VOLUME_ID_MISMATCH',
  VOLUME_OFFLINE: 'VOLUME_OFFLINE',
  VOLUME_REMOVED: 'VOLUME_REMOVED',
  FILE_NOT_FOUND: 'FILE_NOT_FOUND',
  SNAPSHOT_EXISTS: 'SNAPSHOT_EXISTS',
  SNAPSHOT_NOT_FOUND: 'SNAPSHOT_NOT_FOUND',
  SNAPSHOT_IN_USE: 'SNAPSHOT_IN_USE',
  BASE_MISMATCH: 'BASE_MISMATCH',
  // membership
  NOT_A_MEMBER: 'NOT_A_MEMBER',
  MEMBER_NOT_FOUND: 'MEMBER_NOT_FOUND',
  ALREADY_MEMBER: 'ALREADY_MEMBER',
  /** A reader (granted read access, not a member) tried to write. */
  READ_ONLY: 'READ_ONLY',
  NOT_A_READER: 'NOT_A_READER',
  STILL_A_MEMBER: 'STILL_A_MEMBER',
  LAST_MEMBER: 'LAST_MEMBER',
  GENERATION_CONFLICT: 'GENERATION_CONFLICT',
  NO_QUORUM: 'NO_QUORUM',
  /** A change found two or more configurations of the next generation promised in doubt: it cannot tell which may have been committed. */
  GENERATION_IN_DOUBT: 'GENERATION_IN_DOUBT',
  VOLUME_REFUSED: 'VOLUME_REFUSED',
  UNKNOWN_PEER: 'UNKNOWN_PEER',
  CHANGE_REFUSED: 'CHANGE_REFUSED',
  MOVE_INTERRUPTED: 'MOVE_INTERRUPTED',
  ILLEGAL_TRANSITION: 'ILLEGAL_TRANSITION',
  // data and writes
  CHUNK_MISSING: 'CHUNK_MISSING',
  HASH_MISMATCH: 'HASH_MISMATCH',
  WRITE_NOT_ACKNOWLEDGED: 'WRITE_NOT_ACKNOWLEDGED',
  TX_DECIDED: 'TX_DECIDED',
  TX_UNKNOWN: 'TX_UNKNOWN',
  LOG_COMPACTED: 'LOG_COMPACTED',
  // WebDAV (api/dav/)
  /** The resource is locked and the request did not submit the lock's token (RFC 4918 423). */
  LOCKED: 'LOCKED',
  /** An If, If-Match, If-None-Match or Overwrite condition is false (412). */
  PRECONDITION_FAILED: 'PRECONDITION_FAILED',
  /** The parent folder is missing, or a path is a file where a folder is needed (409). */
  NO_PARENT_FOLDER: 'NO_PARENT_FOLDER',
  /** MKCOL where something exists already (405, RFC 4918 §9.3.1). */
  ALREADY_EXISTS: 'ALREADY_EXISTS',
  /** Refused whatever the state: Depth infinity PROPFIND, a move into itself, a protected property (403). */
  DAV_FORBIDDEN: 'DAV_FORBIDDEN',
  /** COPY or MOVE to another volume or server (502, RFC 4918 §9.8.5). */
  BAD_DESTINATION: 'BAD_DESTINATION',
  /** `replicant mount`: the OS's WebDAV filesystem is missing or refused (raised in the CLI only). */
  MOUNT_FAILED: 'MOUNT_FAILED',
  // the store and the node
  DATA_DIR_LOCKED: 'DATA_DIR_LOCKED',
  BAD_SWARM_KEY: 'BAD_SWARM_KEY',
  ADDRESS_IN_USE: 'ADDRESS_IN_USE',
  STORE_CLOSED: 'STORE_CLOSED',
  PACK_TRUNCATED: 'PACK_TRUNCATED',
  NODE_NOT_RUNNING: 'NODE_NOT_RUNNING',
  INTERNAL: 'INTERNAL',
  // the wire
  BAD_MESSAGE: 'BAD_MESSAGE',
  MESSAGE_TOO_LARGE: 'MESSAGE_TOO_LARGE',
  UNSUPPORTED_VERSION: 'UNSUPPORTED_VERSION',
  STREAM_CLOSED: 'STREAM_CLOSED',
  TRUNCATED: 'TRUNCATED',
  LINK_DROPPED: 'LINK_DROPPED',
  THROTTLED: 'THROTTLED',
  REMOTE_ERROR: 'REMOTE_ERROR',
  HTTP_ERROR: 'HTTP_ERROR',
  TIMEOUT: 'TIMEOUT',
  ABORTED: 'ABORTED',
  // test tooling (topologies)
  BAD_TOPOLOGY: 'BAD_TOPOLOGY',
  BAD_TOPOLOGY_CONFIG: 'BAD_TOPOLOGY_CONFIG',
  KILL_NEEDS_PROCESS: 'KILL_NEEDS_PROCESS',
  NODE_DOWN: 'NODE_DOWN',
  NODE_RUNNING: 'NODE_RUNNING',
  NO_TOPOLOGY: 'NO_TOPOLOGY',
  START_FAILED: 'START_FAILED',
  TOPOLOGY_RUNNING: 'TOPOLOGY_RUNNING',
  UNKNOWN_NODE: 'UNKNOWN_NODE'
} as const

export type ErrorCode = typeof Codes[keyof typeof Codes]

const KNOWN = new Set<string>(Object.values(Codes))

/** A code received from elsewhere (a peer, the HTTP API): kept when registered, else `fallback`. */
export function toErrorCode (code: unknown, fallback: ErrorCode = Codes.REMOTE_ERROR): ErrorCode {
  return typeof code === 'string' && KNOWN.has(code) ? code as ErrorCode : fallback
}

export class ReplicantError extends Error {
  readonly code: ErrorCode
  readonly details?: Record<string, unknown>

  constructor (code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message)
    this.name = 'ReplicantError'
    this.code = code
    if (details !== undefined) this.details = details
  }

  toJSON (): { code: ErrorCode, message: string, details?: Record<string, unknown> } {
    return { code: this.code, message: this.message, ...(this.details !== undefined ? { details: this.details } : {}) }
  }
}

/** Bad input from a caller (a client or a peer). */
export class InvalidInputError extends ReplicantError {
  constructor (code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details)
    this.name = 'InvalidInputError'
  }
}

export class NotFoundError extends ReplicantError {
  constructor (code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details)
    this.name = 'NotFoundError'
  }
}

export class ConflictError extends ReplicantError {
  constructor (code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details)
    this.name = 'ConflictError'
  }
}

/** A peer misbehaved or failed on the wire. */
export class ProtocolError extends ReplicantError {
  constructor (code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details)
    this.name = 'ProtocolError'
  }
}

export class NotMemberError extends ReplicantError {
  constructor (message: string, details?: Record<string, unknown>) {
    super(Codes.NOT_A_MEMBER, message, details)
    this.name = 'NotMemberError'
  }
}

/** A peer went past one of its limits (requests per second, replies in flight): retry later. */
export class ThrottledError extends ReplicantError {
  constructor (message: string, details?: Record<string, unknown>) {
    super(Codes.THROTTLED, message, details)
    this.name = 'ThrottledError'
  }
}

/** A chunk's location points past the end of its pack (bytes never synced before a crash). */
export class PackTruncatedError extends ReplicantError {
  constructor (pack: number, offset: number, length: number) {
    super(Codes.PACK_TRUNCATED, `pack ${pack} is shorter than a chunk located in it (offset ${offset}, length ${length})`, { pack, offset, length })
    this.name = 'PackTruncatedError'
  }
}

export function isReplicantError (err: unknown): err is ReplicantError {
  return err instanceof ReplicantError
}
