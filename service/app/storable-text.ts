/**
 * Text as Postgres stores and counts it. `text` cannot hold U+0000, and a
 * lone UTF-16 surrogate has no UTF-8 form: the database refuses either
 * (22P05, 22021) after the request was accepted, so validation refuses them
 * first. With the `u` flag a surrogate pair reads as one astral code point,
 * so `\p{Cs}` matches only unpaired ones: what `String#isWellFormed` checks,
 * which the ES2023 lib this project compiles against does not declare.
 */
const UNSTORABLE = /[\0\p{Cs}]/u;

export function isStorable(text: string): boolean {
  return !UNSTORABLE.test(text);
}

/**
 * Length in Unicode code points, as Postgres' `char_length` counts it, not in
 * UTF-16 units as `String#length` does: an emoji is one, not two. Counting
 * stops past `max`, so a huge string costs no more than one a unit too long.
 */
export function codePointLength(text: string, max = Number.POSITIVE_INFINITY): number {
  let count = 0;
  for (let i = 0; i < text.length && count <= max; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}
