/** Runs the WebDAV clients the tests use (litmus, rclone), configured by environment only. */
import { execFile } from 'node:child_process'
import { join } from 'node:path'

export interface Run { code: number, stdout: string, stdoutBytes: Buffer, stderr: string }

export async function run (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 600_000): Promise<Run> {
  return await new Promise((resolve, reject) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' }, (err, stdout, stderr) => {
      if (err !== null && (err as NodeJS.ErrnoException).code === 'ENOENT') { reject(new Error(`${cmd} is not installed (.ci/run installs it: apt-get install litmus rclone)`)); return }
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, stdout: stdout.toString('utf8'), stdoutBytes: stdout, stderr: stderr.toString('utf8') })
    })
  })
}

/**
 * rclone's remote `d:` for a node's volume, in environment variables (no config file: RCLONE_CONFIG
 * names one that does not exist). `auth` picks how the token goes: Basic password or bearer.
 */
export async function rcloneEnv (dir: string, apiUrl: string, volume: string, token: string, auth: 'basic' | 'bearer' = 'basic'): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {
    RCLONE_CONFIG: join(dir, 'no-rclone.conf'),
    RCLONE_CONFIG_D_TYPE: 'webdav',
    RCLONE_CONFIG_D_URL: `${apiUrl}/dav/${volume}`,
    RCLONE_CONFIG_D_VENDOR: 'other'
  }
  if (auth === 'bearer') {
    env.RCLONE_CONFIG_D_BEARER_TOKEN = token
  } else {
    env.RCLONE_CONFIG_D_USER = 'anyone'
    env.RCLONE_CONFIG_D_PASS = (await run('rclone', ['obscure', token], env)).stdout.trim()
  }
  return env
}

export async function rclone (env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  return await run('rclone', ['--retries', '1', '--low-level-retries', '1', ...args], env)
}
