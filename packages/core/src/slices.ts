/**
 * The parts of a long piece of work, `size` items each, with a turn of the
 * event loop between them: the controller's SQLite runs on its thread, and a
 * 10,000-host write in one go held up every heartbeat and frame until it ended.
 */
export async function* slices<T>(items: readonly T[], size: number): AsyncGenerator<T[]> {
  for (let start = 0; start < items.length; start += size) {
    if (start > 0) await new Promise((resolve) => setImmediate(resolve));
    yield items.slice(start, start + size);
  }
}
