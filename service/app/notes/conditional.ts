/**
 * Entity tags in conditional requests (RFC 9110 §8.8.3, §13.1.1, §13.1.2):
 * a header is `*` or a comma-separated list of tags, each optionally `W/`
 * (weak) and quoted. The quotes may hold commas, so the list is scanned tag
 * by tag, never split on commas. An element that is not a tag is skipped: it
 * names no representation, so it can match nothing.
 */

export interface EntityTag {
  weak: boolean;
  /** The quoted part, quotes included: `"v123"`. */
  opaque: string;
}

export type TagList = '*' | EntityTag[];

export function parseTagList(header: string): TagList {
  if (header.trim() === '*') return '*';
  const tags: EntityTag[] = [];
  let i = 0;
  while (i < header.length) {
    const char = header[i];
    if (char === ',' || char === ' ' || char === '\t') {
      i++;
      continue;
    }
    const weak = header.startsWith('W/"', i);
    const open = weak ? i + 2 : i;
    if (header[open] === '"') {
      const close = header.indexOf('"', open + 1);
      if (close === -1) break;
      tags.push({ weak, opaque: header.slice(open, close + 1) });
      i = close + 1;
    } else {
      // Not a tag: skip to the next element.
      const comma = header.indexOf(',', i);
      i = comma === -1 ? header.length : comma + 1;
    }
  }
  return tags;
}

/** If-None-Match: weak comparison, and `*` matches any current representation (§13.1.2). */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return true;
  const list = parseTagList(header);
  if (list === '*') return false;
  return !list.some((tag) => tag.opaque === etag);
}

/**
 * If-Match: strong comparison, so a weak tag never matches (§13.1.1). The
 * opaque tags it lists, or `*` for "any current representation".
 */
export function strongTags(header: string): '*' | string[] {
  const list = parseTagList(header);
  if (list === '*') return '*';
  return list.filter((tag) => !tag.weak).map((tag) => tag.opaque);
}
