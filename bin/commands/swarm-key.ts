/**
 * `replicant swarm-key generate` and `swarm-key fingerprint FILE`: keys for private swarms
 * (`start --swarm-key FILE`), in kubo's swarm.key format (core/swarm-key.ts). No node needed.
 */
import { type Cli, out } from '../cli.js'
import { generateSwarmKey, readSwarmKeyFile } from '../../core/swarm-key.js'

export function registerSwarmKeyCommands (cli: Cli): void {
  const cmd = cli.program.command('swarm-key')
    .description('keys for private swarms: only nodes started with the same --swarm-key connect')
  cmd.command('generate')
    .description('print a new swarm key (kubo\'s swarm.key format): replicant swarm-key generate > swarm.key; chmod 600 swarm.key')
    .action(() => { process.stdout.write(generateSwarmKey()) })
  cmd.command('fingerprint <file>')
    .description('check a swarm key file and print its fingerprint (what `status` shows; never the key)')
    .action(async (file: string) => {
      const key = await readSwarmKeyFile(file)
      out(key.fingerprint)
      if (key.exposed) process.stderr.write(`warning: ${file} is readable by other users (chmod 600 it)\n`)
    })
}
