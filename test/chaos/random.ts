import { randomInt } from 'node:crypto';
import { inject } from 'vitest';

/**
 * The campaign's one source of randomness: mulberry32 over a 32-bit seed.
 * The seed is CHAOS_SEED when set, else drawn once per run by
 * test/chaos/seed-setup.ts and handed to every file; each file derives its
 * own stream from it and its name, so replaying one file alone with
 * CHAOS_SEED makes the same choices as it did in the full run. What replays is
 * every choice (order, cut points, abort kind, the SIGTERM moment); the
 * timing of the machine does not.
 */

declare module 'vitest' {
  export interface ProvidedContext {
    chaosSeed: number;
  }
}

export interface Random {
  readonly seed: number;
  /** In [0, 1). */
  next(): number;
  /** A whole number from min to max, both included. */
  int(min: number, max: number): number;
  chance(probability: number): boolean;
  pick<T>(items: readonly T[]): T;
  shuffle<T>(items: readonly T[]): T[];
  /**
   * A stream of its own for `name`: draws whose number depends on timing (a
   * paced load) take from it, so they do not shift the choices made after them.
   */
  derive(name: string): Random;
}

function hashOf(text: string): number {
  let hash = 2_166_136_261;
  for (const char of text) hash = Math.imul(hash ^ char.charCodeAt(0), 16_777_619) >>> 0;
  return hash;
}

export function parseSeed(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const seed = Number(text);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new Error(`CHAOS_SEED must be a whole number from 0 to ${0xffff_ffff}, got "${text}"`);
  }
  return seed;
}

/** CHAOS_SEED, or a fresh random one. */
export function chooseSeed(): number {
  return parseSeed(process.env.CHAOS_SEED) ?? randomInt(0, 0xffff_ffff);
}

export function mulberry32(seed: number): Random {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  return {
    seed,
    next,
    int,
    chance: (probability) => next() < probability,
    pick: (items) => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[int(0, items.length - 1)] as (typeof items)[number];
    },
    shuffle: (items) => {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i--) {
        const j = int(0, i);
        [out[i], out[j]] = [out[j] as (typeof out)[number], out[i] as (typeof out)[number]];
      }
      return out;
    },
    derive: (name) => mulberry32((seed ^ hashOf(name)) >>> 0),
  };
}

/** This file's stream, and a line saying how to replay it (printed at the start of the file). */
export function campaignRandom(file: string): Random {
  const seed = inject('chaosSeed') ?? chooseSeed();
  console.log(`chaos seed ${seed} (${file}): replay with CHAOS_SEED=${seed} npm run test:chaos`);
  return mulberry32(seed).derive(file);
}
