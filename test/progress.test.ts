import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { startNode, tmpDir, runCli, clientOf } from './helpers.js'
import { bytes } from './replication-helpers.js'
import { RateMeter } from '../core/rate.js'
import { Progress, REDRAW_MS, progressShown, progressText, secondsText, summaryText } from '../bin/progress.js'

const MiB = 1024 * 1024
const PERCENT_BAR = /\[[#.]{24}\]\s+\d+\.\d%/

test('rate and ETA: measured from the first sample, none before half a second, restarted when the count goes back', t => {
  const m = new RateMeter()
  t.deepEqual(m.sample(0, 10 * MiB, 1000), { rate: null, etaSeconds: null })
  t.deepEqual(m.sample(MiB, 10 * MiB, 1400), { rate: null, etaSeconds: null }, 'a burst under 0.5 s is no rate')
  // 2 MiB in 2 s: 1 MiB/s, 8 MiB left: 8 s.
  t.deepEqual(m.sample(2 * MiB, 10 * MiB, 3000), { rate: MiB, etaSeconds: 8 })
  // 3 MiB in 4 s: 0.75 MiB/s, 7 MiB left: 9.33 s, rounded up.
  t.deepEqual(m.sample(3 * MiB, 10 * MiB, 5000), { rate: 0.75 * MiB, etaSeconds: 10 })
  t.is(m.sample(4 * MiB, undefined, 5000).etaSeconds, null, 'no total, no ETA')
  t.deepEqual(m.sample(MiB, 10 * MiB, 6000), { rate: null, etaSeconds: null }, 'a count that went back starts again')
  t.deepEqual(m.sample(2 * MiB, 10 * MiB, 7000), { rate: MiB, etaSeconds: 8 })
})

test('the line: bar with percentage, bytes of total, files, rate, ETA; a rate given by the node wins', t => {
  const line = progressText({ label: 'dump v', bytesDone: 5 * MiB, bytesTotal: 20 * MiB, filesDone: 3, filesTotal: 12 }, { rate: 2 * MiB, etaSeconds: 150 })
  t.is(line, `dump v [${'#'.repeat(6)}${'.'.repeat(18)}]  25.0% 5.0 MiB/20.0 MiB files 3/12 2.0 MiB/s eta 2m30s`)
  t.is(progressText({ bytesDone: 1024, bytesTotal: 4096, estimated: true, rate: 512, etaSeconds: 6 }, { rate: 99, etaSeconds: 99 }),
    `[${'#'.repeat(6)}${'.'.repeat(18)}]  25.0% 1.0 KiB/~4.0 KiB 512 B/s eta 6s`)
  t.is(progressText({ label: 'dump v', bytesDone: 3 * MiB }, { rate: null, etaSeconds: null }), 'dump v 3.0 MiB', 'no total: no bar, no ETA')
  t.is(secondsText(59.4), '59s')
  t.is(secondsText(3599), '59m59s')
  t.is(secondsText(7260), '2h01m')
  t.is(summaryText({ label: 'put', bytesDone: 10 * MiB, filesDone: 4, filesTotal: 5 }, 4), 'put: 10.0 MiB files 4/5 in 4.0 s (2.5 MiB/s)')
})

test('redraws are throttled to one per REDRAW_MS; stop ends with the summary; notes go above the bar', t => {
  let now = 10_000
  let done = 0
  const written: string[] = []
  const p = new Progress(() => ({ label: 'x', bytesDone: done, bytesTotal: 100 * MiB }), { shown: true, timer: false, now: () => now, write: s => written.push(s), columns: 200 })
  t.is(p.draws, 1, 'drawn at once')
  t.regex(written[0], /^\rx \[\.{24}\]\s+0\.0%/)
  for (let i = 1; i <= 50; i++) { // 50 updates over 1 s: 10 ms apart
    now += 10
    done += MiB
    p.update()
  }
  t.is(p.draws, 1 + Math.floor(500 / REDRAW_MS), 'one redraw per REDRAW_MS (at +200 and +400 ms), however often update is called')
  now += REDRAW_MS
  p.update()
  const last = written[written.length - 1]
  t.true(last.endsWith('50.0% 50.0 MiB/100.0 MiB 71.4 MiB/s eta 1s\x1b[K'), last)
  t.regex(last, /^\rx \[#{12}\.{12}\]/)
  p.note('failed a: gone')
  t.is(written[written.length - 2], '\r\x1b[Kfailed a: gone\n')
  t.is(written[written.length - 1], last, 'the bar drawn again under the note')
  now += 800
  p.stop()
  t.is(written[written.length - 2], '\rx: 50.0 MiB in 1.5 s (33.3 MiB/s)\x1b[K')
  t.is(written[written.length - 1], '\n')
  const count = written.length
  p.stop()
  p.update()
  t.is(written.length, count, 'nothing after stop')
})

test('not shown: nothing is written at all, notes are plain lines', t => {
  const written: string[] = []
  const p = new Progress(() => ({ bytesDone: 1, bytesTotal: 2 }), { shown: false, timer: false, write: s => written.push(s) })
  p.update()
  p.note('skipped l: not a regular file')
  p.stop()
  t.deepEqual(written, ['skipped l: not a regular file\n'])
  t.false(progressShown(undefined, false))
  t.true(progressShown(undefined, true))
  t.true(progressShown('always', false))
  t.false(progressShown('never', true))
})

test('dump and restore: no bar when stderr is not a terminal; with REPLICANT_PROGRESS=always a bar with a percentage', async t => {
  t.timeout(120_000)
  const dir = await tmpDir(t)
  const a = await startNode(t)
  await a.createVolume({ name: 'pv' })
  for (let i = 0; i < 4; i++) await a.volumes.putFile('pv', `/f${i}`, bytes(randomBytes(2 * MiB)))
  await a.volumes.createSnapshot('pv', 's1')

  const quiet = join(dir, 'quiet.dump')
  const d1 = await runCli(['dump', 'pv', '--snapshot', 's1', '-o', quiet], { dataDir: a.dataDir })
  t.is(d1.code, 0, d1.stderr)
  t.is(d1.stderr, '', 'stderr not a terminal: quiet')
  t.regex(d1.stdout, /^dumped pv snapshot s1 to /)

  const shown = join(dir, 'shown.dump')
  const d2 = await runCli(['dump', 'pv', '--snapshot', 's1', '-o', shown], { dataDir: a.dataDir, env: { REPLICANT_PROGRESS: 'always' } })
  t.is(d2.code, 0, d2.stderr)
  t.regex(d2.stderr, new RegExp(`\\rdump pv ${PERCENT_BAR.source} [\\d.]+ (?:[KM]i)?B/~8\\.0 MiB`), 'a bar with a percentage of the estimated total (the first one may be at 0 B)')
  t.regex(d2.stderr, /\rdump pv: [\d.]+ MiB in [\d.]+ s \([\d.]+ [KMG]iB\/s\)\S+\n$/, 'ends with the summary line')
  t.is((await stat(shown)).size, (await stat(quiet)).size)
  t.false(d2.stdout.includes('\r'), 'stdout keeps only the result line')

  const b = await startNode(t)
  const r = await runCli(['restore', shown], { dataDir: b.dataDir, env: { REPLICANT_PROGRESS: 'always' } })
  t.is(r.code, 0, r.stderr)
  t.regex(r.stderr, new RegExp(`\\rrestore ${shown.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} ${PERCENT_BAR.source}`))
  t.regex(r.stdout, /restored pv .* 4 files/)
  const c = await startNode(t)
  const r2 = await runCli(['restore', quiet], { dataDir: c.dataDir })
  t.is(r2.code, 0, r2.stderr)
  t.is(r2.stderr, '')
})

test('put and get of a tree with REPLICANT_PROGRESS=always: the same bar, files of total, then the summary', async t => {
  t.timeout(120_000)
  const a = await startNode(t)
  await a.createVolume({ name: 'tv' })
  const src = await tmpDir(t)
  for (let i = 0; i < 3; i++) await writeFile(join(src, `f${i}`), randomBytes(MiB))
  const put = await runCli(['put', 'tv', src, '/t'], { dataDir: a.dataDir, env: { REPLICANT_PROGRESS: 'always' } })
  t.is(put.code, 0, put.stderr)
  t.regex(put.stderr, new RegExp(`\\r${PERCENT_BAR.source} [\\d.]+ [KM]?i?B/3\\.0 MiB files \\d/3`))
  t.regex(put.stderr, /\r3\.0 MiB files 3\/3 in [\d.]+ s \([\d.]+ [KMG]iB\/s\)\S+\n$/)
  const get = await runCli(['get', 'tv', '/t', '-o', join(src, 'back')], { dataDir: a.dataDir })
  t.is(get.code, 0, get.stderr)
  t.is(get.stderr, '', 'quiet without a terminal')
})

test('volume wait with REPLICANT_PROGRESS=always: the copy onto a new member as a bar with the node\'s rate', async t => {
  t.timeout(180_000)
  const a = await startNode(t)
  // 4 KiB chunks: the copy goes in rounds of 256 chunks (1 MiB), each a step of its progress
  // (with the default chunk size the 6 MiB are one round, 0 until the end).
  await a.createVolume({ name: 'wv', chunkSize: 4096 })
  for (let i = 0; i < 6; i++) await a.volumes.putFile('wv', `/f${i}`, bytes(randomBytes(MiB)))
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  // a's replies to b capped at 1.5 MB/s: the copy of 6 MiB lasts about 4 s, long enough for several polls.
  await clientOf(a).slowLink([b.peerId], { bytesPerSecond: 1_500_000 })
  await a.sync.addReplica('wv', b.peerId)
  const w = await runCli(['volume', 'wait', 'wv', '--steady', '--timeout', '120'], { dataDir: b.dataDir, env: { REPLICANT_PROGRESS: 'always' } })
  t.is(w.code, 0, w.stderr)
  t.regex(w.stderr, /\rwv: copy \[#+\.*\] +\d+\.\d% [\d.]+ [KM]iB\/6\.0 MiB files \d\/6 [\d.]+ [KM]iB\/s/, 'bytes under way, at the rate the node measures')
  t.regex(w.stdout, /volume wv is steady \(6 files/)
})

test('put and get of one file with REPLICANT_PROGRESS=always: a bar with a percentage of the file, then the summary; quiet without a terminal', async t => {
  t.timeout(120_000)
  const a = await startNode(t)
  await a.createVolume({ name: 'sv' })
  const dir = await tmpDir(t)
  const data = randomBytes(3 * MiB)
  await writeFile(join(dir, 'big.bin'), data)
  const put = await runCli(['put', 'sv', join(dir, 'big.bin'), '/big.bin'], { dataDir: a.dataDir, env: { REPLICANT_PROGRESS: 'always' } })
  t.is(put.code, 0, put.stderr)
  t.regex(put.stderr, new RegExp(`\\rput sv:/big\\.bin ${PERCENT_BAR.source} [\\d.]+ [KM]?i?B/3\\.0 MiB`), 'a bar of the file\'s size')
  t.regex(put.stderr, /\rput sv:\/big\.bin: 3\.0 MiB in [\d.]+ s \([\d.]+ [KMG]iB\/s\)\S+\n$/, 'ends with the summary line')
  t.regex(put.stdout, /^stored sv:\/big\.bin \(3145728 bytes/)
  const quietPut = await runCli(['put', 'sv', '-', '/stdin.bin'], { dataDir: a.dataDir, input: data })
  t.is(quietPut.code, 0, quietPut.stderr)
  t.is(quietPut.stderr, '', 'stderr not a terminal: quiet')

  const get = await runCli(['get', 'sv', '/big.bin', '-o', join(dir, 'back.bin')], { dataDir: a.dataDir, env: { REPLICANT_PROGRESS: 'always' } })
  t.is(get.code, 0, get.stderr)
  t.regex(get.stderr, new RegExp(`\\rget sv:/big\\.bin ${PERCENT_BAR.source} [\\d.]+ [KM]?i?B/3\\.0 MiB`))
  t.regex(get.stderr, /\rget sv:\/big\.bin: 3\.0 MiB in [\d.]+ s/)
  t.true(data.equals(await readFile(join(dir, 'back.bin'))))
  const toStdout = await runCli(['get', 'sv', '/stdin.bin'], { dataDir: a.dataDir, env: { REPLICANT_PROGRESS: 'always' } })
  t.is(toStdout.code, 0, toStdout.stderr)
  t.true(data.equals(toStdout.stdoutBytes), 'the bar stays off stdout')
  t.regex(toStdout.stderr, /\rget sv:\/stdin\.bin: 3\.0 MiB in /)
  const quietGet = await runCli(['get', 'sv', '/big.bin', '-o', join(dir, 'back2.bin')], { dataDir: a.dataDir })
  t.is(quietGet.code, 0, quietGet.stderr)
  t.is(quietGet.stderr, '', 'quiet without a terminal')
})

test('volume move with REPLICANT_PROGRESS=always: the new member\'s copy as a bar with rate, then the result; quiet without a terminal', async t => {
  t.timeout(180_000)
  const a = await startNode(t)
  await a.createVolume({ name: 'mv', chunkSize: 4096 })
  for (let i = 0; i < 6; i++) await a.volumes.putFile('mv', `/f${i}`, bytes(randomBytes(MiB)))
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  const c = await startNode(t, { join: [a.multiaddrs()[0]] })
  await a.sync.addReplica('mv', b.peerId)
  const caughtUp = async (): Promise<void> => {
    while ((await b.volumeInfo('mv')).state !== 'steady') await new Promise(resolve => setTimeout(resolve, 100))
  }
  await caughtUp()
  // c's copy from a and b capped at 1.5 MB/s each: the 6 MiB take seconds, several redraws.
  await clientOf(a).slowLink([c.peerId], { bytesPerSecond: 1_500_000 })
  await clientOf(b).slowLink([c.peerId], { bytesPerSecond: 1_500_000 })
  const m = await runCli(['volume', 'move', 'mv', '--from', b.peerId, '--to', c.peerId], { dataDir: a.dataDir, env: { REPLICANT_PROGRESS: 'always' } })
  t.is(m.code, 0, m.stderr)
  t.regex(m.stderr, /\rmove mv: copying to \S{8} \[#+\.*\] +\d+\.\d% [\d.]+ [KM]iB\/6\.0 MiB files \d\/6 [\d.]+ [KM]iB\/s/, 'the copy under way, at the rate the node measures')
  t.regex(m.stdout, /volume mv: move done; members /)
  t.deepEqual([...(await a.volumeInfo('mv')).members].sort(), [a.peerId, c.peerId].sort())
  // Moved back without a terminal: no bar, only the result.
  await clientOf(a).fixLinks()
  await clientOf(b).fixLinks()
  const back = await runCli(['volume', 'move', 'mv', '--from', c.peerId, '--to', b.peerId], { dataDir: a.dataDir })
  t.is(back.code, 0, back.stderr)
  t.notRegex(back.stderr, /\[[#.]{24}\]/, 'no bar when stderr is not a terminal')
  t.regex(back.stdout, /volume mv: move done/)
})
