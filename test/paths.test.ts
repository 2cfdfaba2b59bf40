import '../core/polyfill.js'
import test from 'ava'
import fc from 'fast-check'
import { normalizePath, normalizePrefix, validateVolumeName, MAX_PATH_BYTES, MAX_SEGMENT_BYTES } from '../core/paths.js'
import { InvalidInputError, type ErrorCode } from '../core/errors.js'
import { httpStatusOf } from '../api/error-status.js'

function rejects (t: import('ava').ExecutionContext, fn: () => unknown, code: ErrorCode): void {
  const err = t.throws(fn, { instanceOf: InvalidInputError })
  t.is(err?.code, code)
  t.is(err === undefined ? undefined : httpStatusOf(err), 400)
}

// A path of exactly `bytes` bytes (leading slash included) made of 200-byte segments.
function pathOfBytes (bytes: number): string {
  let p = ''
  while (p.length + 201 <= bytes) p += '/' + 'x'.repeat(200)
  const rest = bytes - p.length - 1
  return rest > 0 ? p + '/' + 'y'.repeat(rest) : p
}

const acceptedPaths: Array<[unknown, string]> = [
  ['a', '/a'],
  ['/a', '/a'],
  ['a/b/c', '/a/b/c'],
  ['/a/b/c', '/a/b/c'],
  ['a.txt', '/a.txt'],
  ['.hidden', '/.hidden'],
  ['..dots', '/..dots'],
  ['dots..', '/dots..'],
  ['...', '/...'],
  ['a/.b/c', '/a/.b/c'],
  ['with space/and-dash_underscore', '/with space/and-dash_underscore'],
  ['ünïcödé/日本語/файл.txt', '/ünïcödé/日本語/файл.txt'],
  ['emoji/😀.png', '/emoji/😀.png'],
  ['percent%2F/literal', '/percent%2F/literal'],
  ['colon:semi;', '/colon:semi;'],
  ['x'.repeat(MAX_SEGMENT_BYTES), '/' + 'x'.repeat(MAX_SEGMENT_BYTES)],
  ['日'.repeat(85), '/' + '日'.repeat(85)], // 255 bytes of UTF-8
  [pathOfBytes(MAX_PATH_BYTES), pathOfBytes(MAX_PATH_BYTES)]
]

for (const [input, expected] of acceptedPaths) {
  test(`normalizePath accepts ${JSON.stringify(input).slice(0, 60)}`, t => {
    t.is(normalizePath(input), expected)
    t.is(normalizePath(expected), expected, 'normal form is a fixed point')
  })
}

const rejectedPaths: Array<[string, unknown]> = [
  ['empty string', ''],
  ['root only', '/'],
  ['non-string number', 42],
  ['undefined', undefined],
  ['null', null],
  ['object', { path: '/a' }],
  ['..', '..'],
  ['/..', '/..'],
  ['../etc/passwd', '../etc/passwd'],
  ['a/../b', 'a/../b'],
  ['a/..', 'a/..'],
  ['.', '.'],
  ['./a', './a'],
  ['a/./b', 'a/./b'],
  ['a/.', 'a/.'],
  ['double slash inside', 'a//b'],
  ['double leading slash', '//a'],
  ['trailing slash', 'a/'],
  ['trailing slash after dir', '/a/b/'],
  ['NUL', 'a\u0000b'],
  ['NUL at end', 'a\u0000'],
  ['newline', 'a\nb'],
  ['tab', 'a\tb'],
  ['carriage return', 'a\rb'],
  ['escape', 'a\u001bb'],
  ['unit separator', 'a\u001fb'],
  ['DEL', 'a\u007fb'],
  ['backslash', 'a\\b'],
  ['backslash traversal', '..\\..\\x'],
  ['segment over 255 bytes', 'x'.repeat(MAX_SEGMENT_BYTES + 1)],
  ['multibyte segment over 255 bytes', '日'.repeat(86)],
  ['path over 4096 bytes', pathOfBytes(MAX_PATH_BYTES + 1)],
  ['lone high surrogate', 'a\ud800b'],
  ['lone low surrogate', 'a\udc00'],
  ['very long path', 'a/'.repeat(100000) + 'b']
]

for (const [name, input] of rejectedPaths) {
  test(`normalizePath rejects ${name}`, t => { rejects(t, () => normalizePath(input), 'BAD_PATH') })
}

test('paths differing only in lone surrogates do not alias', t => {
  // If such paths were accepted they would encode to the same UTF-8 key (U+FFFD).
  t.throws(() => normalizePath('/\ud800'))
  t.throws(() => normalizePath('/\ud801'))
})

const acceptedPrefixes: Array<[unknown, string]> = [
  [undefined, '/'],
  [null, '/'],
  ['', '/'],
  ['/', '/'],
  ['a', '/a'],
  ['/a', '/a'],
  ['a/', '/a/'],
  ['/a/b/', '/a/b/'],
  ['日本/', '/日本/']
]

for (const [input, expected] of acceptedPrefixes) {
  test(`normalizePrefix accepts ${JSON.stringify(input)}`, t => { t.is(normalizePrefix(input), expected) })
}

const rejectedPrefixes: Array<[string, unknown]> = [
  ['number', 5],
  ['object', {}],
  ['..', '..'],
  ['../', '../'],
  ['a/../', 'a/../'],
  ['./', './'],
  ['double trailing slash', 'a//'],
  ['double leading slash', '//'],
  ['empty segment', 'a//b/'],
  ['NUL', 'a\u0000/'],
  ['control char', '\u0001'],
  ['backslash', 'a\\'],
  ['over 4096 bytes', pathOfBytes(MAX_PATH_BYTES + 1)]
]

for (const [name, input] of rejectedPrefixes) {
  test(`normalizePrefix rejects ${name}`, t => { rejects(t, () => normalizePrefix(input), 'BAD_PATH') })
}

const acceptedNames = ['a', '0', 'vol', 'my-vol', 'my_vol', 'my.vol', 'v1.2-3_4', 'a'.repeat(63), '9lives', 'a-', 'a.']

for (const name of acceptedNames) {
  test(`validateVolumeName accepts ${JSON.stringify(name)}`, t => { t.is(validateVolumeName(name), name) })
}

const rejectedNames: Array<[string, unknown]> = [
  ['empty', ''],
  ['64 chars', 'a'.repeat(64)],
  ['uppercase', 'Vol'],
  ['leading dash', '-vol'],
  ['leading dot', '.vol'],
  ['leading underscore', '_vol'],
  ['dot', '.'],
  ['dot dot', '..'],
  ['slash', 'a/b'],
  ['backslash', 'a\\b'],
  ['space', 'a b'],
  ['NUL', 'a\u0000'],
  ['newline', 'a\n'],
  ['trailing newline only', 'vol\n'],
  ['unicode', 'völ'],
  ['percent', 'a%20b'],
  ['colon', 'a:b'],
  ['number', 5],
  ['undefined', undefined],
  ['null', null],
  ['array', ['a']]
]

for (const [name, input] of rejectedNames) {
  test(`validateVolumeName rejects ${name}`, t => { rejects(t, () => validateVolumeName(input), 'BAD_VOLUME_NAME') })
}

// ---- Unicode: one spelling per name, nothing that makes a name look like another ----

const NFD_CAFE = 'cafe\u0301'
const NFC_CAFE = 'caf\u00e9'

const normalisedToNfc: Array<[string, string, string]> = [
  ['decomposed é', NFD_CAFE, '/' + NFC_CAFE],
  ['decomposed é in a directory', `${NFD_CAFE}/menu.txt`, `/${NFC_CAFE}/menu.txt`],
  ['Hangul jamo', '\u1112\u1161\u11ab', '/\ud55c'],
  ['Å as A + ring', 'A\u030a', '/\u00c5'],
  ['Ångström sign (a singleton) becomes Å', '\u212b', '/\u00c5'],
  ['combining marks reordered', 'a\u0323\u0307', '/\u1ea1\u0307'],
  ['zero-width joiner in an emoji sequence', '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}.png', '/\u{1F468}\u200D\u{1F469}\u200D\u{1F467}.png'],
  ['zero-width non-joiner in Persian', '\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645', '/\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645'],
  ['emoji variation selector', '\u263a\ufe0f', '/\u263a\ufe0f'],
  ['Arabic and Hebrew letters (right-to-left text is fine)', '\u05e9\u05dc\u05d5\u05dd/\u0633\u0644\u0627\u0645', '/\u05e9\u05dc\u05d5\u05dd/\u0633\u0644\u0627\u0645']
]

for (const [name, input, expected] of normalisedToNfc) {
  test(`normalizePath gives NFC: ${name}`, t => {
    t.is(normalizePath(input), expected)
    t.is(normalizePath(expected), expected, 'NFC is a fixed point')
    t.is(normalizePath(expected.normalize('NFD')), expected, 'the NFD spelling names the same path')
  })
}

test('café typed NFC and NFD is one path; its NFD form is not canonical (what a peer must not send)', t => {
  t.not(NFD_CAFE, NFC_CAFE)
  t.is(normalizePath(NFD_CAFE), normalizePath(NFC_CAFE))
  t.not(normalizePath('/' + NFD_CAFE), '/' + NFD_CAFE)
  t.is(normalizePrefix(NFD_CAFE + '/'), `/${NFC_CAFE}/`)
})

test('path limits count the NFC form', t => {
  // 128 decomposed é (256 units, 384 bytes) are 128 precomposed (256 bytes): one over the segment limit...
  t.throws(() => normalizePath('e\u0301'.repeat(128)), { instanceOf: InvalidInputError })
  // ...and 127 fit, although the NFD input is 381 bytes.
  t.is(normalizePath('e\u0301'.repeat(127)), '/' + '\u00e9'.repeat(127))
})

const unsafeChars: Array<[string, string]> = [
  ['U+202A left-to-right embedding', '\u202a'],
  ['U+202B right-to-left embedding', '\u202b'],
  ['U+202C pop directional formatting', '\u202c'],
  ['U+202D left-to-right override', '\u202d'],
  ['U+202E right-to-left override', '\u202e'],
  ['U+2066 left-to-right isolate', '\u2066'],
  ['U+2067 right-to-left isolate', '\u2067'],
  ['U+2068 first strong isolate', '\u2068'],
  ['U+2069 pop directional isolate', '\u2069'],
  ['U+200E left-to-right mark', '\u200e'],
  ['U+200F right-to-left mark', '\u200f'],
  ['U+061C Arabic letter mark', '\u061c'],
  ['U+200B zero-width space', '\u200b'],
  ['U+2060 word joiner', '\u2060'],
  ['U+2063 invisible separator', '\u2063'],
  ['U+FEFF byte order mark', '\ufeff'],
  ['U+00AD soft hyphen', '\u00ad'],
  ['U+180E Mongolian vowel separator', '\u180e'],
  ['U+2028 line separator', '\u2028'],
  ['U+2029 paragraph separator', '\u2029'],
  ['U+206A inhibit symmetric swapping', '\u206a'],
  ['U+FFF9 interlinear annotation anchor', '\ufff9'],
  ['U+0085 next line (C1)', '\u0085'],
  ['U+009B control sequence introducer (C1)', '\u009b'],
  ['U+E0041 tag latin capital A', '\u{e0041}'],
  ['U+E0001 language tag', '\u{e0001}']
]

for (const [name, ch] of unsafeChars) {
  test(`normalizePath refuses ${name}`, t => {
    for (const input of [`a${ch}b`, `${ch}a`, `dir/a${ch}`, `${ch}/x`]) {
      const err = t.throws(() => normalizePath(input), { instanceOf: InvalidInputError })
      t.is(err?.code, 'BAD_PATH')
      t.is(httpStatusOf(err), 400)
      t.is(err?.details?.char, 'U+' + ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0'))
    }
    rejects(t, () => normalizePrefix(`a${ch}/`), 'BAD_PATH')
  })
}

test('the right-to-left override spoof (invoice\u202Efdp.exe shows as invoiceexe.pdf) is refused by name', t => {
  const err = t.throws(() => normalizePath('/invoice\u202efdp.exe'), { instanceOf: InvalidInputError })
  t.regex(err?.message ?? '', /U\+202E/)
})

test('property: normalizePath output is NFC, canonical, free of unsafe characters, and spelling-independent', t => {
  // Composed graphemes, mixed with slashes, dots and the characters refused.
  const unit = fc.oneof(fc.constantFrom('/', '.', 'e\u0301', '\u00e9', '\u202e', '\u2066', '\u200f', '\u200d'), fc.string({ unit: 'grapheme-composite', minLength: 1, maxLength: 1 }))
  fc.assert(fc.property(fc.array(unit, { minLength: 1, maxLength: 30 }).map(a => a.join('')), s => {
    let out: string
    try { out = normalizePath(s) } catch (err) {
      // a refusal is typed, and the other spelling is refused too
      if (!(err instanceof InvalidInputError) || err.code !== 'BAD_PATH') return false
      try { normalizePath(s.normalize('NFD')); return false } catch { return true }
    }
    return out === out.normalize('NFC') && normalizePath(out) === out &&
      normalizePath(s.normalize('NFD')) === out && normalizePath(s.normalize('NFC')) === out &&
      !/[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/.test(out)
  }), { numRuns: 5000, seed: 14 })
  t.pass()
})
