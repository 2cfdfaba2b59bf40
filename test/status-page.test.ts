import '../core/polyfill.js'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { chromium, type Browser, type Page } from 'playwright-core'
import { startNode, waitFor, clientOf, randomSource } from './helpers.js'
import { bytes } from './replication-helpers.js'
import { Readable } from 'node:stream'

/** Debian's chromium (`.ci/run` installs it); playwright-core drives it, downloading no browser. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
/** Where a failing run leaves its screenshot (and REPLICANT_SCREENSHOT, if set, the one of a passing run). */
const SHOTS = process.env.REPLICANT_TEST_ARTIFACTS ?? join(tmpdir(), 'replicant-test-artifacts')

async function launch (): Promise<Browser> {
  // Root in CI: Chromium's sandbox needs an unprivileged user namespace, which containers often lack.
  return await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] })
}

/** A page in a fresh browser (closed at teardown) that collects console errors and warnings and page errors. */
async function watchedPage (t: ExecutionContext): Promise<{ page: Page, problems: string[] }> {
  const browser = await launch()
  t.teardown(async () => { await browser.close() })
  const page = await (await browser.newContext()).newPage()
  const problems: string[] = []
  page.on('console', msg => { if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`) })
  page.on('pageerror', err => { problems.push(`page error: ${err.message}`) })
  return { page, problems }
}

/** Saves a full-page screenshot under SHOTS (a failing test's evidence) and returns its path. */
async function shot (page: Page, name: string): Promise<string> {
  await mkdir(SHOTS, { recursive: true })
  const path = join(SHOTS, name)
  await page.screenshot({ path, fullPage: true })
  return path
}

test('the status page shows a two-node volume live: a write and a member going down show within 2 s, with no console error', async t => {
  t.timeout(120_000)
  if (!existsSync(CHROMIUM)) { t.fail(`no chromium at ${CHROMIUM} (apt-get install chromium; .ci/run does)`); return }
  const a = await startNode(t)
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'pg', replicas: [b.peerId] })
  await waitFor(async () => (await b.store.getVolume('pg')) !== undefined ? true : undefined)

  const { page, problems } = await watchedPage(t)
  page.on('requestfailed', r => { if (!r.url().includes('/v1/events')) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`) })

  try {
    // The token goes in once; the page then lives on the HttpOnly cookie.
    const res = await page.goto(`${a.apiUrl!}/?token=${a.apiToken!}`)
    t.is(res?.status(), 200)
    t.is(new URL(page.url()).search, '', 'the token left the address bar')
    const cookies = await page.context().cookies()
    t.true(cookies.some(c => c.name === 'replicant_token' && c.httpOnly && c.sameSite === 'Strict'))
    t.false(String(await page.evaluate('document.cookie')).includes('replicant_token'), 'the script cannot read the token')

    const vol = page.locator('[data-volume="pg"]')
    await vol.waitFor({ timeout: 5_000 })
    await page.locator('#live', { hasText: 'live' }).waitFor({ timeout: 5_000 })
    t.is(await vol.locator('[data-member]').count(), 2, 'both members drawn')
    t.is(await vol.locator(`[data-member="${a.peerId}"]`).getAttribute('data-state'), 'steady')
    await vol.locator(`[data-member="${b.peerId}"][data-connected="true"]`).waitFor({ timeout: 5_000 })
    t.is(await vol.getAttribute('data-files'), '0')

    // A write shows within 2 s, without a reload.
    const data = Buffer.from('written while the page watches')
    await clientOf(a).put('pg', '/live.txt', Readable.from([data]), { size: data.byteLength })
    const wrote = Date.now()
    await page.locator('[data-volume="pg"][data-files="1"]').waitFor({ timeout: 2_000 })
    t.log(`write shown after ${Date.now() - wrote} ms`)
    await page.locator('#events li[data-kind="change"]').first().waitFor({ timeout: 2_000 })

    // A member going down shows within 2 s.
    if (process.env.REPLICANT_SCREENSHOT !== undefined) await page.screenshot({ path: process.env.REPLICANT_SCREENSHOT, fullPage: true })
    await b.stop()
    const down = Date.now()
    await page.locator(`[data-volume="pg"] [data-member="${b.peerId}"][data-connected="false"]`).waitFor({ timeout: 2_000 })
    t.log(`member down shown after ${Date.now() - down} ms`)
    await page.locator(`#peers tr[data-peer="${b.peerId}"]`, { hasText: 'not connected' }).waitFor({ timeout: 2_000 })
    if (process.env.REPLICANT_SCREENSHOT !== undefined) await page.screenshot({ path: process.env.REPLICANT_SCREENSHOT.replace(/\.png$/, '-down.png'), fullPage: true })
    t.deepEqual(problems, [], 'no console error')
  } catch (err) {
    t.log(`screenshot: ${await shot(page, 'status-page-failure.png')}`)
    throw err
  }
})

test('the status page shows a move run from this node live: the new member\'s copy with rate and ETA, then done', async t => {
  t.timeout(120_000)
  if (!existsSync(CHROMIUM)) { t.fail(`no chromium at ${CHROMIUM}`); return }
  const a = await startNode(t)
  const c = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  // 4 KiB chunks: the copy goes in rounds of 256 chunks (1 MiB), each a step of its progress.
  await a.createVolume({ name: 'mp', chunkSize: 4096 })
  for (let i = 0; i < 6; i++) await a.volumes.putFile('mp', `/f${i}`, randomSource(1024 * 1024).source)
  // a's replies to c at 1 MiB/s: the copy of 6 MiB takes seconds, long enough to be watched.
  a.links.set([c.peerId], { bytesPerSecond: 1024 * 1024 })
  const { page, problems } = await watchedPage(t)
  try {
    await page.goto(`${a.apiUrl!}/?token=${a.apiToken!}`)
    await page.locator('#live', { hasText: 'live' }).waitFor({ timeout: 5_000 })
    const moving = a.moveVolume('mp', a.peerId, c.peerId)
    const copying = page.locator(`[data-move="mp"][data-phase="copying"][data-to="${c.peerId}"] .progress`)
    await copying.filter({ hasText: /\/s, ETA / }).waitFor({ timeout: 15_000 })
    const first = Number(await copying.getAttribute('data-progress'))
    t.log(`copy shown: ${await copying.innerText()}`)
    // It moves on without a reload: a later bar shows more done.
    await waitFor(async () => Number(await copying.getAttribute('data-progress').catch(() => '100')) > first ? true : undefined, 100)
    const result = await moving
    t.is(result.phase, 'done')
    await page.locator('[data-move="mp"][data-phase="done"]').waitFor({ timeout: 2_000 })
    await page.locator('#events li[data-kind="move"]', { hasText: 'done' }).first().waitFor({ timeout: 2_000 })
    t.deepEqual(problems, [], 'no console error')
  } catch (err) {
    t.log(`screenshot: ${await shot(page, 'status-page-move-failure.png')}`)
    throw err
  }
})

test('the status page needs the token: without it, 401 and no page', async t => {
  if (!existsSync(CHROMIUM)) { t.fail(`no chromium at ${CHROMIUM}`); return }
  const a = await startNode(t)
  const browser = await launch()
  t.teardown(async () => { await browser.close() })
  const page = await (await browser.newContext()).newPage()
  t.is((await page.goto(`${a.apiUrl!}/`))?.status(), 401)
  t.is((await page.goto(`${a.apiUrl!}/?token=wrong`))?.status(), 401)
  t.deepEqual(await page.context().cookies(), [], 'no cookie for a wrong token')
})

test('the status page lists a conflict with links that read both versions (with the page\'s cookie)', async t => {
  t.timeout(120_000)
  if (!existsSync(CHROMIUM)) { t.fail(`no chromium at ${CHROMIUM}`); return }
  const a = await startNode(t)
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'cv', replicas: [b.peerId] })
  await waitFor(async () => (await b.store.getVolume('cv')) !== undefined ? true : undefined)
  const { page, problems } = await watchedPage(t)
  try {
    await page.goto(`${a.apiUrl!}/?token=${a.apiToken!}`)
    await page.locator('#live', { hasText: 'live' }).waitFor({ timeout: 5_000 })
    // a and b write the same path apart, then meet: the page learns of it from the events.
    await a.peers.block([b.peerId])
    await b.peers.block([a.peerId])
    await a.volumes.putFile('cv', '/doc.txt', bytes(Buffer.from('a wrote this')), { mtime: 1_000 })
    await b.volumes.putFile('cv', '/doc.txt', bytes(Buffer.from('b wrote this one')), { mtime: 2_000 })
    a.peers.unblock()
    b.peers.unblock()
    const row = page.locator('#conflicts tr[data-conflict="/doc.txt"]')
    await row.waitFor({ timeout: 30_000 })
    const links = row.locator('a')
    t.is(await links.count(), 2, 'a link to each version')
    const texts: string[] = []
    for (const href of [await links.nth(0).getAttribute('href'), await links.nth(1).getAttribute('href')]) {
      // The link as the browser follows it: same origin, the HttpOnly cookie, no bearer token.
      texts.push(await page.evaluate(async (h: string) => { const r = await fetch(h); return `${r.status} ${await r.text()}` }, href!))
    }
    t.deepEqual(texts.sort(), ['200 a wrote this', '200 b wrote this one'], 'both versions read through the links')
    t.deepEqual(problems, [], 'no console error')
  } catch (err) {
    t.log(`screenshot: ${await shot(page, 'status-page-conflict-failure.png')}`)
    throw err
  }
})
