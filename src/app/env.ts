import type { HttpBindings } from '@hono/node-server';
import type { AuthVariables } from './auth.js';

/** The Hono environment of the app: node:http bindings, and the caller once authenticated. */
export type Env = { Bindings: HttpBindings; Variables: AuthVariables };
