/** `replicant conflicts VOLUME` and `replicant resolve VOLUME PATH --keep current|other` (replication/conflicts.ts). */
import { Option } from 'commander'
import { type Cli, print, out, fmtBytes } from '../cli.js'
import type { ConflictVersion, KeepChoice } from '../../api/types.js'

function versionLine (label: string, v: ConflictVersion | null): string {
  if (v === null) return `    ${label}: (no record)`
  const vector = Object.entries(v.vector).map(([p, n]) => `${p.slice(-8)}:${n}`).join(',')
  return `    ${label}: ${v.path}  ${v.deleted ? 'deleted' : fmtBytes(v.size)}  mtime ${new Date(v.mtime).toISOString()}  writer ${v.writer ?? (v.writers.length > 0 ? v.writers.join('|') : '?')}  vector {${vector}}`
}

export function registerConflictCommands (cli: Cli): void {
  cli.program.command('conflicts')
    .description('list the conflicts of a volume: each file with both versions (path, size, mtime, writer, vector)')
    .argument('<volume>')
    .option('--json', 'print JSON')
    .action(async (volume: string, opts: { json?: boolean }) => {
      const list = await (await cli.client()).conflicts(volume)
      if (opts.json === true) return print(list)
      if (list.conflicts.length === 0) return out(`no conflicts in ${list.volume}`)
      for (const c of list.conflicts) {
        out(c.path)
        out(versionLine('current', c.current))
        out(versionLine('other  ', c.other))
      }
      out(`${list.conflicts.length} conflict(s)${list.truncated ? ' (more not listed)' : ''}; resolve one with \`replicant resolve ${list.volume} PATH --keep current|other\``)
    })

  cli.program.command('resolve')
    .description('resolve a conflict as an ordinary replicated write: keep the current version (the copy is deleted) or the other (written at the path, then the copy deleted)')
    .argument('<volume>')
    .argument('<path>', 'the file in conflict, or one of its .conflict- copies')
    .addOption(new Option('--keep <which>', 'the version to keep').choices(['current', 'other']).makeOptionMandatory())
    .option('--json', 'print JSON')
    .action(async (volume: string, path: string, opts: { keep: KeepChoice, json?: boolean }) => {
      const r = await (await cli.client()).resolve(volume, path, opts.keep)
      if (opts.json === true) return print(r)
      out(`${r.volume}:${r.path}: kept ${r.kept}${r.written ? ' (written at the path)' : ''}; removed ${r.removed.join(', ')}`)
    })
}
