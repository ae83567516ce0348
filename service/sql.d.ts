// SQL files are bundled as text (scripts/bundle-options.ts, vitest.config.ts).
declare module '*.sql' {
  const text: string;
  export default text;
}
