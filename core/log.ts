import createDebug from 'debug'
import { format } from 'node:util'

/** Namespaced loggers (`DEBUG=replicant:*`); library code never writes to the console. */
export function logger (name: string): createDebug.Debugger & { error: createDebug.Debugger } {
  const log = createDebug(`replicant:${name}`) as createDebug.Debugger & { error: createDebug.Debugger }
  log.error = createDebug(`replicant:${name}:error`)
  return log
}

export const LOG_FORMATS = ['text', 'json'] as const
export type LogFormat = typeof LOG_FORMATS[number]

/** A peer id in a line (libp2p's Ed25519 ids, and the other multihash forms). */
const PEER_ID = /\b(12D3Koo[1-9A-HJ-NP-Za-km-z]{44,48}|Qm[1-9A-HJ-NP-Za-km-z]{44})\b/
/** A volume named in a line: `volume 'NAME'`, or a line that starts `NAME: ` (the engine's habit). */
const VOLUME = /volume '([a-z0-9][a-z0-9._-]{0,62})'|^([a-z0-9][a-z0-9._-]{0,62}): /

/** One log line as a JSON object: level, time, component, volume and peer when the line names them, message, namespace. */
export function jsonLogLine (namespace: string, args: unknown[], now = new Date()): string {
  const parts = namespace.split(':')
  const level = parts.at(-1) === 'error' ? 'error' : 'debug'
  const component = parts[0] === 'replicant' ? parts[1] ?? '' : parts[0]
  const message = format(...args)
  const volume = VOLUME.exec(message)
  const peer = PEER_ID.exec(message)
  return JSON.stringify({
    level,
    time: now.toISOString(),
    component,
    ...(volume !== null ? { volume: volume[1] ?? volume[2] } : {}),
    ...(peer !== null ? { peer: peer[1] } : {}),
    message,
    namespace
  })
}

/**
 * `--log-format json`: every debug line (ours and libp2p's, as DEBUG selects them) becomes one
 * JSON object per line on stderr. The namespaces stay as they are.
 */
export function useLogFormat (fmt: LogFormat, write: (line: string) => void = line => { process.stderr.write(line) }): void {
  if (fmt !== 'json') return
  createDebug.formatArgs = function () {} // no colour, no prefix: the object says it
  createDebug.log = function (this: { namespace: string }, ...args: unknown[]) { write(jsonLogLine(this.namespace, args) + '\n') }
}
