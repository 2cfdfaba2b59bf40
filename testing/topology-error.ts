import { ReplicantError, type ErrorCode } from '../core/errors.js'

/** Errors of topologies (setup, state file, waits); its own module so the CLI loads it cheaply. */
export class TopologyError extends ReplicantError {
  constructor (code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details)
    this.name = 'TopologyError'
  }
}
