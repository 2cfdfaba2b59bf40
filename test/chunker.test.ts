import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { fixedChunks, isValidChunkSize, DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE } from '../core/chunker.js'
import { chunkCount } from '../core/records.js'
import { startNode, pieces, collect, randomSource, sha256Stream, asyncSource } from './helpers.js'

const SIZE = 16

async function chunksOf (bytes: Uint8Array, pieceSizes: number[], size = SIZE): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  // Keep the chunks as yielded (no copy): a chunker that reused a buffer would show here.
  for await (const c of fixedChunks(pieces(bytes, pieceSizes), size)) out.push(c)
  return out
}

function checkChunks (t: import('ava').ExecutionContext, chunks: Uint8Array[], input: Uint8Array, size: number): void {
  t.is(chunks.length, Math.ceil(input.byteLength / size), 'chunk count')
  chunks.forEach((c, i) => {
    if (i < chunks.length - 1) t.is(c.byteLength, size, `chunk ${i} is full`)
    else t.true(c.byteLength > 0 && c.byteLength <= size, 'last chunk is non-empty and at most one chunk')
  })
  t.deepEqual(Buffer.concat(chunks), Buffer.from(input))
}

const inputSizes = [0, 1, SIZE - 1, SIZE, SIZE + 1, 2 * SIZE, 2 * SIZE + 1, 5 * SIZE + 7]
const pieceShapes: Array<[string, number[]]> = [
  ['whole input at once', [1 << 30]],
  ['1-byte pieces', [1]],
  ['chunk-sized pieces', [SIZE]],
  ['pieces of chunk+1', [SIZE + 1]],
  ['pieces of chunk-1', [SIZE - 1]],
  ['odd mixed pieces', [3, 29, 1, 16, 40, 7]],
  ['large pieces', [3 * SIZE + 5]]
]

for (const n of inputSizes) {
  for (const [shape, sizes] of pieceShapes) {
    test(`fixedChunks: ${n} bytes as ${shape}`, async t => {
      const input = randomBytes(n)
      checkChunks(t, await chunksOf(input, sizes), input, SIZE)
    })
  }
}

test('fixedChunks: empty source and empty pieces yield nothing', async t => {
  t.deepEqual(await collect(fixedChunks((async function * () {})(), SIZE)), Buffer.alloc(0))
  const withEmpties = asyncSource([new Uint8Array(0), Uint8Array.from([1, 2]), new Uint8Array(0)])
  const chunks: Uint8Array[] = []
  for await (const c of fixedChunks(withEmpties, SIZE)) chunks.push(c)
  t.deepEqual(chunks.map(c => Buffer.from(c)), [Buffer.from([1, 2])])
})

test('fixedChunks: chunks stay intact when the source reuses its buffer', async t => {
  const input = randomBytes(5 * SIZE + 3)
  // A source that overwrites one buffer for every piece (as some stream readers do).
  function * reusing (pieceSize: number): Generator<Uint8Array> {
    const buf = new Uint8Array(pieceSize)
    for (let o = 0; o < input.byteLength; o += pieceSize) {
      const n = Math.min(pieceSize, input.byteLength - o)
      buf.set(input.subarray(o, o + n))
      yield buf.subarray(0, n)
      buf.fill(0xee)
    }
  }
  for (const pieceSize of [7, SIZE, 2 * SIZE, 3 * SIZE + 1]) {
    const chunks: Uint8Array[] = []
    for await (const c of fixedChunks(asyncSource(reusing(pieceSize)), SIZE)) chunks.push(c)
    checkChunks(t, chunks, input, SIZE)
  }
})

test('isValidChunkSize', t => {
  for (const n of [MIN_CHUNK_SIZE, 8192, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE]) t.true(isValidChunkSize(n), String(n))
  for (const n of [0, 1, MIN_CHUNK_SIZE / 2, MAX_CHUNK_SIZE * 2, 65535, 65537, 3 * 4096, 4096.5, -4096, NaN, '65536', undefined]) {
    t.false(isValidChunkSize(n), String(n))
  }
})

// ---- through a real node's VolumeService ----

const K64 = 64 * 1024

for (const size of [0, 1, K64 - 1, K64, K64 + 1, 3 * K64]) {
  test(`VolumeService: a ${size}-byte file round-trips`, async t => {
    const node = await startNode(t, { api: false })
    await node.volumes.createVolume({ name: 'v' })
    const bytes = randomBytes(size)
    const rec = await node.volumes.putFile('v', '/f', pieces(bytes, [1000, 70000, 1]))
    t.is(rec.size, size)
    t.is(chunkCount(rec), Math.ceil(size / K64))
    const stat = await node.volumes.stat('v', 'f')
    t.is(stat.size, size)
    t.deepEqual(await collect(node.volumes.readFile('v', stat)), bytes)
  })
}

test('VolumeService: 100 MiB streamed in and out matches by sha256', async t => {
  const node = await startNode(t, { api: false })
  await node.volumes.createVolume({ name: 'big' })
  const size = 100 * 1024 * 1024
  // Odd piece size so most chunks are staged across piece boundaries.
  const src = randomSource(size, 1024 * 1024 + 7)
  const rec = await node.volumes.putFile('big', '/blob', src.source)
  t.is(src.yielded(), size)
  t.is(rec.size, size)
  t.is(chunkCount(rec), size / K64)
  const back = await sha256Stream(node.volumes.readFile('big', await node.volumes.stat('big', '/blob')))
  t.is(back.size, size)
  t.is(back.hex, src.digest())
})

test('VolumeService: range reads at chunk boundaries', async t => {
  const node = await startNode(t, { api: false })
  await node.volumes.createVolume({ name: 'v' })
  const size = 3 * K64 + 100
  const bytes = randomBytes(size)
  const rec = await node.volumes.putFile('v', '/f', pieces(bytes, [K64]))
  const ranges: Array<[number, number]> = [
    [0, 0], [0, K64 - 1], [0, K64], [K64 - 1, K64 - 1], [K64 - 1, K64], [K64, K64], [K64, 2 * K64 - 1],
    [2 * K64 - 1, 2 * K64], [3 * K64, size - 1], [size - 1, size - 1], [100, 2 * K64 + 5], [0, size - 1], [1, size - 2]
  ]
  for (const [start, end] of ranges) {
    const got = await collect(node.volumes.readFile('v', rec, { start, end }))
    t.deepEqual(got, bytes.subarray(start, end + 1), `range ${start}-${end}`)
  }
})

test('VolumeService: a volume with 4 KiB chunks and identical content stored once', async t => {
  const node = await startNode(t, { api: false })
  await node.volumes.createVolume({ name: 'small', chunkSize: 4096 })
  const block = randomBytes(4096)
  // Ten identical chunks and a tail: one distinct full chunk plus the tail.
  const bytes = Buffer.concat([...Array(10).fill(block), block.subarray(0, 10)])
  const rec = await node.volumes.putFile('small', '/rep', pieces(bytes, [5000]))
  t.is(rec.chunkSize, 4096)
  t.is(chunkCount(rec), 11)
  const keys: Uint8Array[] = []
  for await (const k of node.store.chunks.keys()) keys.push(k)
  t.is(keys.length, 2)
  t.deepEqual(await collect(node.volumes.readFile('small', rec)), bytes)
  t.deepEqual(await collect(node.volumes.readFile('small', rec, { start: 4090, end: 4100 })), bytes.subarray(4090, 4101))
  // The same content under another path adds no chunks.
  await node.volumes.putFile('small', '/rep2', pieces(bytes, [bytes.byteLength]))
  const after: Uint8Array[] = []
  for await (const k of node.store.chunks.keys()) after.push(k)
  t.is(after.length, 2)
})

test('VolumeService: putFile with an aborted signal commits nothing', async t => {
  const node = await startNode(t, { api: false })
  await node.volumes.createVolume({ name: 'v' })
  const controller = new AbortController()
  function * source (): Generator<Uint8Array> {
    yield randomBytes(K64 * 2)
    controller.abort()
    yield randomBytes(K64)
  }
  // The signal's reason (a DOMException AbortError) is what rejects.
  const reason = await node.volumes.putFile('v', '/f', asyncSource(source()), { signal: controller.signal }).then(() => undefined, (e: unknown) => e)
  t.is((reason as { name?: string })?.name, 'AbortError')
  const err = await t.throwsAsync(node.volumes.stat('v', '/f'))
  t.is((err as { code?: string })?.code, 'FILE_NOT_FOUND')
  t.is((await node.store.getVolume('v'))?.seq, 0)
})

test('VolumeService: a source that fails midway commits nothing', async t => {
  const node = await startNode(t, { api: false })
  await node.volumes.createVolume({ name: 'v' })
  await node.volumes.putFile('v', '/f', pieces(Buffer.from('old content'), [100]))
  function * failing (): Generator<Uint8Array> {
    yield randomBytes(K64 * 3 + 5)
    throw new Error('source broke')
  }
  await t.throwsAsync(node.volumes.putFile('v', '/f', asyncSource(failing())), { message: 'source broke' })
  const rec = await node.volumes.stat('v', '/f')
  t.deepEqual(await collect(node.volumes.readFile('v', rec)), Buffer.from('old content'))
  t.is((await node.store.getVolume('v'))?.seq, 1)
})
