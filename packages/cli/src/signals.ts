/** Resolves at the first SIGINT or SIGTERM: how the long-running verbs (controller, agent) are asked to stop. */
export function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => resolve();
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
}
