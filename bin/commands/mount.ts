/**
 * `replicant mount VOLUME DIR`: mounts a volume's WebDAV endpoint (/dav/VOLUME/) with davfs2 on
 * Linux. The token goes to mount.davfs on its standard input (never in argv, where `ps` shows
 * it). Elsewhere it prints the command of the OS's own WebDAV client (README: "Mount a volume").
 */
import { spawn } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { readApiInfo } from '../../api/api-info.js'
import { readApiToken } from '../../api/api-token.js'
import { ReplicantError, Codes } from '../../core/errors.js'
import { validateVolumeName } from '../../core/paths.js'
import { type Cli, type GlobalOptions, out } from '../cli.js'

/**
 * davfs2 settings. buf_size 64 (KiB): with the default (16) davfs2 1.6 answers every readdir
 * EINVAL under Linux 6.16 and later (davfs2 issue 22, seen here on 6.18).
 */
const DAVFS2_CONF = '# written by replicant mount\nbuf_size 64\n'

async function davUrl (cli: Cli, volume: string): Promise<{ url: string, token: string | undefined }> {
  const { data, apiUrl, token } = cli.program.opts<GlobalOptions>()
  const info = apiUrl === undefined ? await readApiInfo(data) : undefined
  const t = token ?? (info !== undefined ? await readApiToken(data) : process.env.REPLICANT_TOKEN)
  return { url: `${(apiUrl ?? info!.url).replace(/\/$/, '')}/dav/${encodeURIComponent(volume)}/`, token: t }
}

export function registerMountCommands (cli: Cli): void {
  cli.program.command('mount')
    .description('mount a volume as a folder through WebDAV (davfs2 on Linux; prints the command elsewhere)')
    .argument('<volume>')
    .argument('<dir>')
    .option('--print', 'print the mount command instead of running it')
    .action(async (volume: string, dir: string, opts: { print?: boolean }) => {
      const name = validateVolumeName(volume)
      const target = resolve(dir)
      // The volume must exist on the node: a typo fails here, not as an empty mount.
      await (await cli.client()).volumeInfo(name)
      const { url, token } = await davUrl(cli, name)
      if (process.platform !== 'linux' || opts.print === true) {
        out(process.platform === 'darwin'
          ? `mount_webdav -i ${url} ${target}    # user: replicant, password: the API token (replicant api-token)`
          : process.platform === 'win32'
            ? `net use * ${url} /user:replicant TOKEN    # TOKEN: replicant api-token`
            : `printf 'replicant\\nTOKEN\\n' | mount -t davfs -o conf=DAVFS2_CONF,uid=$(id -u),gid=$(id -g) ${url} ${target}    # DAVFS2_CONF: a file with "buf_size 64"`)
        return
      }
      const conf = join(cli.dataDir(), 'davfs2.conf')
      await mkdir(cli.dataDir(), { recursive: true })
      await writeFile(conf, DAVFS2_CONF, { mode: 0o600 })
      const uid = process.getuid?.() ?? 0
      const gid = process.getgid?.() ?? 0
      const code = await new Promise<number>((resolvePromise, reject) => {
        const child = spawn('mount', ['-t', 'davfs', '-o', `conf=${conf},uid=${uid},gid=${gid}`, url, target], { stdio: ['pipe', 'ignore', 'inherit'] })
        child.once('error', reject)
        child.once('exit', (c) => resolvePromise(c ?? 1))
        // mount.davfs asks for the user name, then the password.
        child.stdin.end(`replicant\n${token ?? ''}\n`)
      }).catch((err: NodeJS.ErrnoException) => {
        throw new ReplicantError(Codes.MOUNT_FAILED, `cannot run mount (${err.code ?? err.message}): install davfs2 (apt-get install davfs2)`)
      })
      if (code !== 0) throw new ReplicantError(Codes.MOUNT_FAILED, `mount -t davfs exited ${code}: davfs2 needs root (or a "user" line in /etc/fstab) and the fuse module`)
      out(`mounted ${name} at ${target} (${url}); unmount with: umount ${target}`)
    })
}
