/**
 * `replicant init` and `replicant start`: the commands that run a node. Node modules (libp2p,
 * level) load only here, by dynamic import, so that client commands start fast.
 */
import { createInterface } from 'node:readline'
import { Option, InvalidArgumentError } from 'commander'
import { DEFAULTS } from '../../config/defaults.js'
import { VERSION } from '../../api/api-info.js'
import type { CopyOffer } from '../../replication/membership.js'
import { type Cli, out, fmtBytes, collect } from '../cli.js'
import { parseDurationMs } from '../../replication/never-seen.js'
import { ACCEPT_VOLUMES_MODES, type AcceptVolumes } from '../../replication/volume-acceptance.js'
import { LOG_FORMATS, useLogFormat, jsonLogLine, type LogFormat } from '../../core/log.js'

interface StartOptions {
  listen?: string[], join?: string[], bootstrap?: string[], fanout?: number, maxConnections?: number, inboundRate?: number, api: string, http?: string, confirmCopy?: boolean, copy: boolean,
  discardLocal?: boolean | string[], grace?: number, neverSeenAfter?: string, acceptVolumes?: string, acceptVolumesFrom?: string[], prepareTimeout?: number, preparedExpiry?: number, testing?: boolean, packTarget?: number,
  apiTlsCert?: string, apiTlsKey?: string, apiInsecure?: boolean, apiAllowedHosts?: string[], swarmKey?: string,
  metricsPublic?: boolean, libp2pMetrics: boolean, logFormat: LogFormat
}

/** `start --confirm-copy`: each full copy waits for a y/n line on stdin, one question at a time. */
function confirmOnStdin (): (offer: CopyOffer) => Promise<boolean> {
  const rl = createInterface({ input: process.stdin, terminal: false })
  const lines: string[] = []
  const waiters: Array<(line: string) => void> = []
  rl.on('line', (line) => { const w = waiters.shift(); if (w !== undefined) w(line); else lines.push(line) })
  rl.on('close', () => { for (const w of waiters.splice(0)) w('') })
  let queue: Promise<unknown> = Promise.resolve()
  return async (offer) => {
    const ask = queue.then(async () => {
      const size = offer.files !== null && offer.bytes !== null ? `${offer.files} files, ${fmtBytes(offer.bytes)}` : 'size unknown'
      process.stdout.write(`confirm-copy: full copy of volume ${offer.volume} (id ${offer.volumeId}, ${size}) from ${offer.peer} onto this node: ${offer.why}. Proceed? [y/N] \n`)
      const line = lines.shift() ?? await new Promise<string>(resolve => waiters.push(resolve))
      const yes = /^y(es)?$/i.test(line.trim())
      out(`confirm-copy: ${yes ? 'copying' : 'refused; the volume stays offline on this node'} ${offer.volume}`)
      return yes
    })
    queue = ask.catch(() => {})
    return await ask
  }
}

async function start (cli: Cli, opts: StartOptions): Promise<void> {
  const data = cli.dataDir()
  if (opts.grace !== undefined && !(opts.grace > 0)) throw new Error('--grace takes a number of seconds above 0')
  const neverSeenAfterMs = opts.neverSeenAfter === undefined ? undefined : parseDurationMs(opts.neverSeenAfter)
  if (opts.neverSeenAfter !== undefined && neverSeenAfterMs === undefined) throw new Error(`--never-seen-after takes a duration such as 90s, 10m or 1h (plain numbers are seconds), not '${opts.neverSeenAfter}'`)
  const approveCopy = opts.copy === false
    ? () => Promise.resolve(false)
    : opts.confirmCopy === true ? confirmOnStdin() : undefined
  if ((opts.apiTlsCert === undefined) !== (opts.apiTlsKey === undefined)) throw new Error('--api-tls-cert and --api-tls-key go together')
  useLogFormat(opts.logFormat)
  const say = opts.logFormat === 'json' ? (line: string) => { out(jsonLogLine('replicant:node', [line])) } : out
  const { ReplicantNode } = await import('../../node/replicant-node.js')
  ;(await import('../../node/data-dir.js')).privateUmask() // this process is the node: what level writes is 0600 too
  const node = await ReplicantNode.start({
    dataDir: data,
    listen: opts.listen,
    api: opts.http ?? opts.api,
    ...(opts.apiTlsCert !== undefined && opts.apiTlsKey !== undefined ? { apiTls: { cert: opts.apiTlsCert, key: opts.apiTlsKey } } : {}),
    ...(opts.apiInsecure === true ? { apiInsecure: true } : {}),
    ...(opts.apiAllowedHosts !== undefined ? { apiAllowedHosts: opts.apiAllowedHosts.flatMap(s => s.split(',')).map(s => s.trim()).filter(s => s !== '') } : {}),
    join: opts.join,
    ...(opts.bootstrap !== undefined ? { bootstrap: opts.bootstrap } : {}),
    ...(opts.fanout !== undefined ? { fanout: opts.fanout } : {}),
    ...(opts.maxConnections !== undefined ? { maxConnections: opts.maxConnections } : {}),
    ...(opts.inboundRate !== undefined ? { inboundRate: opts.inboundRate } : {}),
    ...(approveCopy !== undefined ? { approveCopy } : {}),
    ...(opts.discardLocal !== undefined ? { discardLocal: opts.discardLocal } : {}),
    ...(opts.grace !== undefined ? { graceMs: opts.grace * 1000 } : {}),
    ...(neverSeenAfterMs !== undefined ? { neverSeenAfterMs } : {}),
    ...(opts.acceptVolumes !== undefined ? { acceptVolumes: opts.acceptVolumes as AcceptVolumes } : {}),
    ...(opts.acceptVolumesFrom !== undefined ? { acceptVolumesFrom: opts.acceptVolumesFrom.flatMap(s => s.split(',')).map(s => s.trim()).filter(s => s !== '') } : {}),
    ...(opts.prepareTimeout !== undefined && opts.prepareTimeout > 0 ? { prepareTimeoutMs: opts.prepareTimeout * 1000 } : {}),
    ...(opts.preparedExpiry !== undefined && opts.preparedExpiry > 0 ? { preparedExpiryMs: opts.preparedExpiry * 1000 } : {}),
    ...(opts.testing === true ? { testing: true } : {}),
    ...(opts.packTarget !== undefined ? { packTargetBytes: opts.packTarget } : {}),
    ...(opts.swarmKey !== undefined ? { swarmKeyFile: opts.swarmKey } : {}),
    ...(opts.metricsPublic === true ? { metricsPublic: true } : {}),
    ...(!opts.libp2pMetrics ? { libp2pMetrics: false } : {}),
    report: (line) => { say(line) }
  })
  say(`replicant ${VERSION} node started`)
  say(`peer id: ${node.peerId}`)
  if (node.swarmKeyFingerprint !== undefined) say(`private swarm: key fingerprint ${node.swarmKeyFingerprint}`)
  for (const ma of node.multiaddrs()) say(`listening: ${ma}`)
  say(`api: ${node.apiUrl}`)
  if (node.apiUrl !== undefined) say(`status page: ${node.apiUrl}/?token=TOKEN (TOKEN: \`replicant api-token\`); metrics: ${node.apiUrl}/metrics`)
  if (node.store.foundDirty.length > 0) {
    say(`warning: volumes not shut down cleanly: ${node.store.foundDirty.join(', ')}`)
  }
  let stopping = false
  const shutdown = (signal: string): void => {
    if (stopping) return
    stopping = true
    say(`${signal}: stopping`)
    node.stop().then(() => process.exit(0), (err) => { process.stderr.write(`stop failed: ${String(err)}\n`); process.exit(1) })
  }
  process.on('SIGINT', () => shutdown('SIGINT'))
  process.on('SIGTERM', () => shutdown('SIGTERM'))
}

export function registerNodeCommands (cli: Cli): void {
  const { program } = cli
  program.command('init')
    .description('create a node identity and an empty store in --data')
    .action(async () => {
      const data = cli.dataDir()
      const { loadOrCreateIdentity } = await import('../../node/identity.js')
      const { Store } = await import('../../store/store.js')
      const { loadOrCreateApiToken } = await import('../../api/api-token.js')
      const { privateUmask, makeDirPrivate, makeDataDirPrivate } = await import('../../node/data-dir.js')
      privateUmask()
      await makeDirPrivate(data)
      const id = await loadOrCreateIdentity(data)
      await loadOrCreateApiToken(data)
      const store = await Store.open(data)
      await store.close()
      await makeDataDirPrivate(data)
      out(`${id.created ? 'initialised' : 'already initialised'} ${data}\npeer id: ${id.peerId.toString()}\napi token: in ${data}/api.token (replicant api-token shows it)`)
    })

  program.command('api-token')
    .description('print the HTTP API token of the node on --data (for --token / REPLICANT_TOKEN, scripts, the status page)')
    .action(async () => {
      const { readApiToken } = await import('../../api/api-token.js')
      out(await readApiToken(cli.dataDir()))
    })

  program.command('start')
    .description('start a node (initialising --data if needed) and its local HTTP API')
    .option('--listen <multiaddr>', 'libp2p listen address (repeatable)', collect)
    .option('--join <multiaddr>', 'peer to dial at start, ending in /p2p/<peer id> (repeatable); remembered and redialled', collect)
    .option('--bootstrap <multiaddr...>', 'peers to get into the swarm through (ending in /p2p/<peer id>): dialled at start and whenever no peer is connected, not stored; the members of the volumes held here are found through the peers connected')
    .option('--max-connections <n>', 'connections kept open at most (default 300)', (v) => Number(v))
    .option('--inbound-rate <n>', 'new inbound connections a second accepted from one host (default 5)', (v) => Number(v))
    .option('--fanout <n>', 'fellow readers a reader of a volume keeps connected (they fetch from each other; default 6)', (v) => Number(v))
    .addOption(new Option('--api <host:port>', 'local HTTP API address').default(`${DEFAULTS.apiHost}:${DEFAULTS.apiPort}`))
    .option('--http <host:port>', 'alias of --api')
    .option('--api-tls-cert <file>', 'serve the HTTP API over https with this PEM certificate (with --api-tls-key); required off loopback unless --api-insecure')
    .option('--api-tls-key <file>', 'the PEM private key of --api-tls-cert')
    .option('--api-insecure', 'allow the HTTP API off loopback without TLS (the token then crosses the network in clear)')
    .option('--api-allowed-hosts <names>', 'comma-separated names (host or host:port) the Host header may carry besides the bound address and localhost (repeatable)', collect)
    .option('--confirm-copy', 'ask (on stdin) before any full copy onto this node, showing the volume id and size')
    .option('--no-copy', 'refuse every full copy onto this node; such volumes stay offline here')
    .option('--discard-local [volumes...]', 'a local replica whose volume id differs from its members\' is deleted and fully recopied (all volumes, or those named); the only option that deletes data')
    .option('--grace <seconds>', 'a member unreachable this long starts a new generation on the others', (v) => Number(v))
    .addOption(new Option('--accept-volumes <mode>', 'who may create a volume on this node: all, known (--join peers, members of volumes held here, --accept-volumes-from) or none (only `volume accept`)').choices([...ACCEPT_VOLUMES_MODES]).default('known'))
    .option('--accept-volumes-from <peers>', 'comma-separated peer ids whose new volumes are accepted (repeatable)', collect)
    .option('--never-seen-after <duration>', 'a member that has not connected within this long (90s, 10m, 1h) is shown as never seen and does not hold back log compaction (default 10m)')
    .option('--prepare-timeout <seconds>', 'all mode: how long a write waits for every member to prepare (default 30)', (v) => Number(v))
    .option('--prepared-expiry <seconds>', 'all mode: an undecided prepared write is resolved with its coordinator after this long (default 60)', (v) => Number(v))
    .option('--pack-target <bytes>', 'size at which a chunk pack file is closed and a new one started (default 64 MiB; chaos runs use small packs so repacks happen)', (v) => { const n = Number(v); if (!Number.isInteger(n) || n < 65536) throw new InvalidArgumentError('--pack-target takes an integer of at least 65536'); return n })
    .option('--swarm-key <file>', 'a private swarm: only peers started with the same key file connect (make one with `replicant swarm-key generate > swarm.key`)')
    .option('--testing', 'a node for tests and chaos runs: enables the fault routes (/v1/faults/*) and REPLICANT_FAULTS')
    .option('--metrics-public', 'answer GET /metrics without the API token (for a Prometheus that cannot send one; the Host check still applies)')
    .option('--no-libp2p-metrics', 'leave libp2p\'s own metrics out of GET /metrics')
    .addOption(new Option('--log-format <format>', 'debug log lines (DEBUG=replicant:*) as text, or one JSON object per line').choices(LOG_FORMATS).default('text'))
    .action(async (opts: StartOptions) => { await start(cli, opts) })
}
