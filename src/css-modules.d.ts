/** CSS imported with `with { type: 'css' }` is a constructable stylesheet (natively, and via our rollup plugin). */
declare module '*.css' {
  const sheet: CSSStyleSheet;
  export default sheet;
}
