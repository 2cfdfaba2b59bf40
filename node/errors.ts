/**
 * Every error the project raises on purpose is a ReplicantError with a stable upper-case
 * `code` (messages may change, codes do not) and the HTTP status the API answers with.
 */
export class ReplicantError extends Error {
  readonly code: string
  readonly status: number
  readonly details?: Record<string, unknown>

  constructor (code: string, message: string, status = 500, details?: Record<string, unknown>) {
    super(message)
    this.name = 'ReplicantError'
    this.code = code
    this.status = status
    if (details !== undefined) this.details = details
  }

  toJSON (): { code: string, message: string, details?: Record<string, unknown> } {
    return { code: this.code, message: this.message, ...(this.details !== undefined ? { details: this.details } : {}) }
  }
}

export class InvalidInputError extends ReplicantError {
  constructor (code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, 400, details)
    this.name = 'InvalidInputError'
  }
}

export class NotFoundError extends ReplicantError {
  constructor (code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, 404, details)
    this.name = 'NotFoundError'
  }
}

export class ConflictError extends ReplicantError {
  constructor (code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, 409, details)
    this.name = 'ConflictError'
  }
}

export class ProtocolError extends ReplicantError {
  constructor (code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, 502, details)
    this.name = 'ProtocolError'
  }
}

export class NotMemberError extends ReplicantError {
  constructor (message: string, details?: Record<string, unknown>) {
    super('NOT_A_MEMBER', message, 403, details)
    this.name = 'NotMemberError'
  }
}

/** A chunk's location points past the end of its pack (bytes never synced before a crash). */
export class PackTruncatedError extends ReplicantError {
  constructor (pack: number, offset: number, length: number) {
    super('PACK_TRUNCATED', `pack ${pack} is shorter than a chunk located in it (offset ${offset}, length ${length})`, 500, { pack, offset, length })
    this.name = 'PackTruncatedError'
  }
}

export const Codes = {
  BAD_PATH: 'BAD_PATH',
  BAD_VOLUME_NAME: 'BAD_VOLUME_NAME',
  BAD_REQUEST: 'BAD_REQUEST',
  BAD_RANGE: 'BAD_RANGE',
  VOLUME_EXISTS: 'VOLUME_EXISTS',
  VOLUME_NOT_FOUND: 'VOLUME_NOT_FOUND',
  FILE_NOT_FOUND: 'FILE_NOT_FOUND',
  CHUNK_MISSING: 'CHUNK_MISSING',
  DATA_DIR_LOCKED: 'DATA_DIR_LOCKED',
  NODE_NOT_RUNNING: 'NODE_NOT_RUNNING',
  STORE_CLOSED: 'STORE_CLOSED',
  BAD_MESSAGE: 'BAD_MESSAGE',
  MESSAGE_TOO_LARGE: 'MESSAGE_TOO_LARGE',
  FILE_TOO_LARGE: 'FILE_TOO_LARGE',
  HASH_MISMATCH: 'HASH_MISMATCH',
  TIMEOUT: 'TIMEOUT',
  ABORTED: 'ABORTED',
  PACK_TRUNCATED: 'PACK_TRUNCATED'
} as const

export function isReplicantError (err: unknown): err is ReplicantError {
  return err instanceof ReplicantError
}
