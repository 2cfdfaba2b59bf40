#!/usr/bin/env node
/**
 * The `replicant` CLI: global options, then one module per command group. Client commands
 * talk to a running node over its HTTP API and load no libp2p or level (start-up time).
 */
import '../core/polyfill.js'
import { Command } from 'commander'
import { DEFAULTS } from '../config/defaults.js'
import { VERSION } from '../api/api-info.js'
import { isReplicantError } from '../core/errors.js'
import { cliOf } from './cli.js'
import { registerNodeCommands } from './commands/node.js'
import { registerVolumeCommands } from './commands/volume.js'
import { registerFileCommands } from './commands/files.js'
import { registerSnapshotCommands } from './commands/snapshots.js'
import { registerAdminCommands } from './commands/admin.js'
import { registerStatusCommands } from './commands/status.js'
import { registerSwarmKeyCommands } from './commands/swarm-key.js'
import { registerConflictCommands } from './commands/conflicts.js'
import { registerMountCommands } from './commands/mount.js'

const program = new Command()
program
  .name('replicant')
  .description('Peer-to-peer volume replication over libp2p')
  .version(VERSION)
  .option('--data <dir>', 'node data directory', DEFAULTS.dataDir)
  .option('--api-url <url>', 'URL of a running node\'s HTTP API (default: read from --data)')
  .option('--token <token>', 'the node\'s API token (default: read from --data; with --api-url, REPLICANT_TOKEN)')
  .option('--api-ca <file>', 'PEM certificate to trust for an https API (default: the one the node on --data serves)')
  .showHelpAfterError()

// In this order: it is the order `replicant --help` lists them in.
const cli = cliOf(program)
registerNodeCommands(cli)
registerVolumeCommands(cli)
registerFileCommands(cli)
registerSnapshotCommands(cli)
registerAdminCommands(cli)
registerStatusCommands(cli)
registerConflictCommands(cli)
registerMountCommands(cli)
registerSwarmKeyCommands(cli)
;(await import('./topology-command.js')).registerTopologyCommands(program)

program.parseAsync(process.argv).catch((err: unknown) => {
  if (isReplicantError(err)) {
    process.stderr.write(`replicant: ${err.message} [${err.code}]\n`)
  } else {
    process.stderr.write(`replicant: ${(err as Error | undefined)?.message ?? String(err)}\n`)
  }
  process.exit(1)
})
