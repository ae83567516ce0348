/**
 * What every vitest config of this repository shares: service/, the fixtures and the tests import
 * runway by name, and get its source through package.json's `runway-source` export condition (not
 * lib/, which only `npm pack` builds).
 */
export const runwayFromSource = {
  resolve: { conditions: ['runway-source'] },
  ssr: { resolve: { conditions: ['runway-source'] } },
};
