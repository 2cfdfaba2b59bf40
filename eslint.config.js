// The linter `npm test` runs: typescript-eslint's recommended-type-checked rules on every
// TypeScript file, and no runtime source file over 400 lines.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const runtime = ['core', 'store', 'protocols', 'replication', 'api', 'node', 'testing', 'bin', 'config']

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.ci/**', 'data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname }
    }
  },
  {
    files: runtime.map(dir => `${dir}/**/*.ts`),
    rules: {
      'max-lines': ['error', { max: 400, skipBlankLines: false, skipComments: false }]
    }
  },
  {
    // Tests and benchmarks read JSON answers and CBOR frames as they come: the no-unsafe-* family
    // would ask for a type on every field a test reads. The runtime code gets them all.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off'
    }
  },
  {
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } }
  }
)
