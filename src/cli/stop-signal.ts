/**
 * SIGINT and SIGTERM as an AbortSignal for a command that must stop cleanly (a
 * replicator ships what it received, a dump is stopped and saves no snapshot).
 * `release` removes the handlers once the command is done.
 */
export function stopSignal(): { signal: AbortSignal; release: () => void } {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    signal: stop.signal,
    release: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
