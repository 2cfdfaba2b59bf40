import '../core/polyfill.js'
import test from 'ava'
import { repackLine } from '../bin/commands/admin.js'
import { tmpDir, startNode, runCli } from './helpers.js'

test('gc says truthfully what repack freed: an empty pack removed frees nothing', async t => {
  const dataDir = await tmpDir(t)
  // Each start opens a fresh pack: the first start's pack is left empty and sealed.
  const first = await startNode(t, { dataDir })
  await first.stop()
  await startNode(t, { dataDir })
  const cli = await runCli(['gc', '--young', '0'], { dataDir })
  t.is(cli.code, 0, cli.stderr)
  t.is(cli.stdout.split('\n')[1], 'repack: removed 1 pack(s) with no live chunk; freed no disk space (the removed packs held no bytes)')
})

test('the repack line names rewritten packs, copies and the net bytes freed', t => {
  t.is(repackLine({ packsRewritten: 2, packsRemoved: 3, bytesCopied: 1024, bytesFreed: 4096 }),
    'repack: rewrote 2 mostly dead pack(s), copying 1.0 KiB of live chunks out, removed 1 pack(s) with no live chunk; freed 4.0 KiB of disk')
  t.is(repackLine({ packsRewritten: 0, packsRemoved: 0, bytesCopied: 0, bytesFreed: 0 }), 'repack: nothing to give back (no sealed pack is empty or mostly dead)')
})
