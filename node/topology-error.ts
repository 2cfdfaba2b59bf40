import { ReplicantError } from './errors.js'

/** Errors of topologies (setup, state file, waits); its own module so the CLI loads it cheaply. */
export class TopologyError extends ReplicantError {
  constructor (code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, 500, details)
    this.name = 'TopologyError'
  }
}
