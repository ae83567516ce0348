import { spawn } from 'node:child_process';

/**
 * Runs node with `args` and resolves with its exit code (1 when a signal ended it). The child has its
 * own process group, so a terminal's Ctrl-C reaches the server once, through us, not twice (terminal
 * and us), which it would take as "exit now"; SIGINT and SIGTERM are passed on once (npm and the
 * terminal may both deliver the same Ctrl-C to us). A SIGKILL of this process cannot be passed on: the
 * server then runs on, as a detached process does.
 */
export function runNode(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const child = spawn(process.execPath, args, { stdio: 'inherit', env, detached: true });
  let lastForward = 0;
  const forward = (signal: NodeJS.Signals) => {
    if (Date.now() - lastForward < 250) return;
    lastForward = Date.now();
    child.kill(signal);
  };
  // A closed terminal (SIGHUP) drains the server as SIGTERM does: it is in a group of its own, and
  // would otherwise be left running with nobody to stop it.
  const hangUp = () => forward('SIGTERM');
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  process.on('SIGHUP', hangUp);
  return new Promise((done) =>
    child.on('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      process.off('SIGHUP', hangUp);
      done(code ?? (signal ? 1 : 0));
    }),
  );
}
