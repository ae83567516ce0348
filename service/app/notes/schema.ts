import * as v from 'valibot';
import { codePointLength, isStorable } from '../storable-text.js';

/** What clients may send and ask for; every string and number is bounded. */

// The checks of 0001_notes.sql, counted as they count (char_length).
const TITLE_MAX = 200;
const BODY_MAX = 10_000;

const storable = (field: string) =>
  v.check((text: string) => isStorable(text), `${field} must not contain U+0000 or unpaired surrogates`);

const atMost = (field: string, max: number) =>
  v.check((text: string) => codePointLength(text, max) <= max, `${field} must be at most ${max} characters`);

const Title = v.pipe(
  v.string('title must be a string'),
  v.trim(),
  storable('title'),
  v.minLength(1, 'title must not be empty'),
  atMost('title', TITLE_MAX),
);

const Body = v.pipe(v.string('body must be a string'), storable('body'), atMost('body', BODY_MAX));

export const NoteInput = v.strictObject(
  { title: Title, body: v.optional(Body, '') },
  'expected an object with only title and body',
);
export type NoteInput = v.InferOutput<typeof NoteInput>;

export const NotePatch = v.pipe(
  v.strictObject({ title: v.optional(Title), body: v.optional(Body) }, 'expected an object with only title and body'),
  v.check((patch) => patch.title !== undefined || patch.body !== undefined, 'send title, body, or both'),
);
export type NotePatch = v.InferOutput<typeof NotePatch>;

export const ListQuery = v.object({
  limit: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d{1,3}$/, 'limit must be a whole number from 1 to 100'),
      v.transform(Number),
      v.minValue(1, 'limit must be a whole number from 1 to 100'),
      v.maxValue(100, 'limit must be a whole number from 1 to 100'),
    ),
    '20',
  ),
  cursor: v.optional(v.pipe(v.string(), v.maxLength(200, 'cursor is not valid'))),
});

// Same charset rule as request ids: it is stored and compared, never shown in logs.
export const IdempotencyKey = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z0-9._:-]{1,200}$/, 'Idempotency-Key must be 1-200 characters of A-Z a-z 0-9 . _ : -'),
);

export const NoteId = v.pipe(v.string(), v.uuid());
