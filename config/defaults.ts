import { homedir } from 'node:os'
import { join } from 'node:path'

/** Defaults an operator gets without flags; every one is overridable on the command line. */
export const DEFAULTS = {
  /** `--data`: REPLICANT_DATA, else ~/.replicant */
  dataDir: process.env.REPLICANT_DATA ?? join(homedir(), '.replicant'),
  /** `--listen`: libp2p TCP on every interface, fixed port so peers can be told one multiaddr. */
  listen: ['/ip4/0.0.0.0/tcp/4001'],
  /** `--api`: the local HTTP API, loopback only. */
  apiHost: '127.0.0.1',
  apiPort: 4780
} as const
