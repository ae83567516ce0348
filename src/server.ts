import { main } from './main.js';

// The bundle's entry. Swap the app here; the runtime stays as it is.
void main({
  loadApp: async (deps) => {
    const { createApp } = await import('./app/create-app.js');
    return createApp(deps);
  },
});
