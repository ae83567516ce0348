import type { RunwayBindings } from 'runway/hono';
import type { AuthVariables } from './auth.js';

/** The Hono environment of the app: the runtime's bindings (any of the three), and the caller once authenticated. */
export type Env = { Bindings: RunwayBindings; Variables: AuthVariables };
