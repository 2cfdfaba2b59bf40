import createDebug from 'debug'

/** Namespaced loggers (`DEBUG=replicant:*`); library code never writes to the console. */
export function logger (name: string): createDebug.Debugger & { error: createDebug.Debugger } {
  const log = createDebug(`replicant:${name}`) as createDebug.Debugger & { error: createDebug.Debugger }
  log.error = createDebug(`replicant:${name}:error`)
  return log
}
