// Received chunks for `for await (const chunk of conn)`, fed by a socket's
// data callbacks, with the socket paused while the consumer lags. Node's own
// Readable iterator is slower in Deno's node:net than this (about 0.8 of the
// 'data' path in bench/).
//
// The queue is its own iterator, and it drives the socket through the
// socket's own methods: no closures per connection (issue 29).

const HIGH_WATER = 8;

/** What the queue pauses, resumes and, when the consumer leaves early, destroys. */
export interface QueueSource {
  pause(): unknown;
  resume(): unknown;
  destroy(): unknown;
}

export class PushQueue implements AsyncIterator<Uint8Array> {
  #queue: Uint8Array[] | undefined;
  // Only the resolve of the promise next() is waiting on: a rejection is
  // resolved with a rejected promise, so an idle connection keeps one
  // function, not two.
  #waiting: ((r: IteratorResult<Uint8Array> | Promise<never>) => void) | undefined;
  #done = false;
  #error: unknown;
  readonly #source: QueueSource;

  constructor(source: QueueSource) {
    this.#source = source;
  }

  push(chunk: Uint8Array): void {
    const w = this.#waiting;
    if (w) {
      this.#waiting = undefined;
      w({ done: false, value: chunk });
      return;
    }
    (this.#queue ??= []).push(chunk);
    if (this.#queue.length >= HIGH_WATER) this.#source.pause();
  }

  end(error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    if (this.#queue !== undefined && this.#queue.length > 0) return;
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.(error !== undefined ? Promise.reject(error) : { done: true, value: undefined });
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    const q = this.#queue;
    if (q !== undefined && q.length > 0) {
      const value = q.shift()!;
      // An emptied queue is dropped: an idle connection keeps no array.
      if (q.length === 0) this.#queue = undefined;
      if (q.length < HIGH_WATER && !this.#done) this.#source.resume();
      return Promise.resolve({ done: false, value });
    }
    if (this.#done) {
      return this.#error !== undefined
        ? Promise.reject(this.#error)
        : Promise.resolve({ done: true, value: undefined });
    }
    this.#source.resume();
    return new Promise((resolve) => (this.#waiting = resolve));
  }

  return(): Promise<IteratorResult<Uint8Array>> {
    this.#done = true;
    this.#source.destroy();
    return Promise.resolve({ done: true, value: undefined });
  }
}
