import { startEntry } from 'runway';
import * as service from './server.js';

// The service started from its TypeScript source, as Bun runs it (`bun --conditions=runway-source
// service/main.ts`); the bundle's own entry is the one `runway build` generates, which does the same.
void startEntry(service);
