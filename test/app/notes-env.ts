import { env } from '../../service/env.js';
import { type EnvOutput, partsOf } from '../../src/config/env-part.js';
import { composeEnv, loadEnv } from '../../src/config/load.js';

/** The notes service's variables (service/env.ts) parsed from `raw`, as the runtime parses them at start-up. */
export function notesEnv(raw: Record<string, string | undefined>): EnvOutput<typeof env> {
  return loadEnv<EnvOutput<typeof env>>(raw, composeEnv(partsOf(env))).env;
}
