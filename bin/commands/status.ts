/** `replicant peers` and `replicant status`: what a running node knows, for people and (--json) scripts. */
import { type Cli, print, out, fmtBytes, copyLine } from '../cli.js'
import type { MemberView, StatusResponse, VolumeInfo } from '../../api/types.js'
import type { ReplicantClient } from '../../api/client.js'

/** A member's lag, both ways, and when it was last in sync: seqs are per member, so not comparable. */
function lagText (m: MemberView): string {
  const ours = m.caughtUp === true ? 'we hold all of its changes' : m.offline ? 'its changes since we lost it unknown' : 'we are still pulling from it'
  const theirs = m.behind === null
    ? 'its lag unknown'
    : m.behind.changes === 0 ? 'it holds all of ours' : `it lacks ${m.behind.complete ? '' : 'at least '}${m.behind.changes} of our changes (${fmtBytes(m.behind.bytes)})`
  const inSync = m.caughtUp === true && m.behind?.changes === 0 ? 'caught up' : `last in sync ${m.inSyncAt === null ? 'not seen' : `${ago(m.inSyncAt)} ago`}`
  return `${inSync}; ${ours}, ${theirs}`
}

function ago (at: number): string {
  const s = Math.max(0, Math.round((Date.now() - at) / 1000))
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`
}

function volumeLines (v: VolumeInfo): string[] {
  const lines = [`  ${v.name}  id ${v.id}  gen ${v.generation}  ${v.writeMode}  ${v.state}  seq ${v.seq}  ${v.files} files  ${fmtBytes(v.bytes)}`]
  if (v.progress !== null && v.progress !== undefined) lines.push(`    copy: ${copyLine(v.progress, ', ')}`)
  if (v.lacking.files > 0 || v.lacking.bytes > 0) lines.push(`    still to fetch: ${v.lacking.files} files, ${fmtBytes(v.lacking.bytes)}`)
  if (v.lacking.refused !== null) lines.push(`    refused: ${v.lacking.refused}`)
  if (v.repairing) {
    const r = v.repair
    lines.push(`    repairing: an update could not be applied; fetching what is missing${r !== null && r !== undefined ? ` (${r.filesTotal - r.filesDone} file(s) lacking${r.lastError !== null ? `, last error: ${r.lastError}` : ''})` : ''}`)
  }
  if (v.damagedChunks > 0) lines.push(`    damaged: ${v.damagedChunks} chunk(s) found missing or corrupt by the last merge`)
  for (const d of v.decisions ?? []) lines.push(`    last reconnect with ${d.peer}: ${d.decision} (${d.why})`)
  const p = v.generationPromise
  if (p !== null && p !== undefined) {
    lines.push(`    generation ${p.generation} promised to ${p.genId} (proposed by ${p.proposer}${p.members !== null ? `, members ${p.members.join(', ')}` : ''}): ${p.state === 'in-doubt' ? 'in doubt (its outcome is not known yet: kept until a member tells it, or a change completes it)' : 'live'}`)
  }
  for (const c of v.membershipChanges ?? []) lines.push(`    membership change ${c.outcome}, proposed by ${c.proposer}: ${c.what}`)
  for (const m of v.memberStates) {
    const where = `${m.self ? 'this node' : m.connected ? 'connected' : m.neverSeen ? 'never seen (check the id; it does not hold back compaction)' : 'not connected'}  ${m.state ?? '?'}${m.offline && m.lastState !== null ? ` (last ${m.lastState})` : ''}`
    const progress = m.self ? `seq ${m.seq}` : `seq ${m.seq ?? '?'}  applied ${m.watermark}${m.syncing ? '  syncing' : ''}${m.lastError !== null ? `  error: ${m.lastError}` : ''}`
    lines.push(`    ${m.peerId}  ${where}  ${progress}${m.self ? '' : `  ${lagText(m)}`}`)
  }
  return lines
}

function statusLines (s: StatusResponse): string[] {
  return [`peer id: ${s.peerId}`, `api:     ${s.api}`, ...s.multiaddrs.map(m => `listen:  ${m}`),
    `swarm:   ${s.privateSwarm ? `private (key fingerprint ${s.swarmKeyFingerprint ?? '?'})` : 'public (no --swarm-key: any peer that knows an address may connect)'}`,
    ...(s.disk !== undefined ? [`disk:    chunk packs ${fmtBytes(s.disk.packBytes)}, index ${fmtBytes(s.disk.indexBytes)}`] : []), 'volumes:',
    ...s.volumes.flatMap(volumeLines),
    ...(s.volumeRefusals ?? []).map(r => `refused new volume ${r.volume} from ${r.from} (${Math.round((Date.now() - r.at) / 1000)}s ago): accept it with \`replicant volume accept ${r.volume} --from ${r.from}\``),
    ...(s.throttledPeers ?? []).map(p => `${p.banned ? 'banned' : 'throttled'} peer ${p.peer} (${Math.round((Date.now() - p.since) / 1000)}s ago): ${p.reason}; ${p.refused} refused, ${p.admitted} admitted${p.bannedUntil !== undefined ? `; refused until ${new Date(p.bannedUntil).toISOString()}` : ''}`)]
}

/** Redraw delay after an event: a burst (a write seen by every member) is one redraw. */
const REDRAW_MS = 200

/** `status --watch`: the status again after each burst of events; reconnects when the stream breaks. */
async function watch (client: ReplicantClient, json: boolean): Promise<void> {
  const stop = new AbortController()
  process.once('SIGINT', () => { stop.abort() })
  const tty = process.stdout.isTTY === true
  let timer: NodeJS.Timeout | undefined
  let drawing = Promise.resolve()
  const draw = async (): Promise<void> => {
    const s = await client.status()
    if (json) out(JSON.stringify(s))
    else if (tty) process.stdout.write(`\x1b[H\x1b[2J${statusLines(s).join('\n')}\n\n(watching ${client.baseUrl}; Ctrl-C ends)\n`)
    else out(`${statusLines(s).join('\n')}\n--- ${new Date().toISOString()}`)
  }
  const later = (): void => {
    if (timer !== undefined) return
    timer = setTimeout(() => { timer = undefined; drawing = drawing.then(draw).catch((err: Error) => { process.stderr.write(`replicant: ${err.message}\n`) }) }, REDRAW_MS)
  }
  let since: number | undefined
  while (!stop.signal.aborted) {
    try {
      await draw()
      for await (const e of client.events({ signal: stop.signal, ...(since !== undefined ? { since } : {}) })) {
        if (e.id !== undefined && e.kind !== 'hello') since = e.id
        if (e.kind !== 'hello') later()
      }
    } catch (err) {
      if (stop.signal.aborted) break
      process.stderr.write(`replicant: ${(err as Error).message}; retrying\n`)
    }
    if (!stop.signal.aborted) await new Promise(resolve => setTimeout(resolve, 1000))
  }
  clearTimeout(timer)
  await drawing
}

export function registerStatusCommands (cli: Cli): void {
  cli.program.command('peers')
    .description('connected and known peers')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { peers } = await (await cli.client()).peers()
      if (opts.json === true) return print(peers)
      for (const p of peers) out(`${p.peerId}\t${p.connected ? 'connected' : 'not connected'}\t${p.addrs.join(' ')}`)
    })

  cli.program.command('status')
    .description('node, volumes and members')
    .option('--json', 'print JSON')
    .option('--watch', 'redraw on every change, from the node\'s event stream (Ctrl-C ends); with --json, one status object per line')
    .action(async (opts: { json?: boolean, watch?: boolean }) => {
      const client = await cli.client()
      if (opts.watch === true) return await watch(client, opts.json === true)
      const s = await client.status()
      if (opts.json === true) return print(s)
      out(statusLines(s).join('\n'))
    })
}
