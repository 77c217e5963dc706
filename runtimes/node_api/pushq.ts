// Received chunks for `for await (const chunk of conn)`, fed by a socket's
// data callbacks, with the socket paused while the consumer lags. Node's own
// Readable iterator is slower in Deno's node:net than this (about 0.8 of the
// 'data' path in bench/).

const HIGH_WATER = 8;

export class PushQueue {
  #queue: Uint8Array[] = [];
  #waiting: ((r: IteratorResult<Uint8Array>) => void) | undefined;
  #failWaiting: ((e: unknown) => void) | undefined;
  #done = false;
  #error: unknown;

  readonly pause: () => void;
  readonly resume: () => void;
  readonly stop: () => void;

  // Plain fields, not parameter properties: Node's type stripping runs only
  // erasable syntax (tsconfig erasableSyntaxOnly).
  constructor(pause: () => void, resume: () => void, stop: () => void) {
    this.pause = pause;
    this.resume = resume;
    this.stop = stop;
  }

  push(chunk: Uint8Array): void {
    const w = this.#waiting;
    if (w) {
      this.#waiting = this.#failWaiting = undefined;
      w({ done: false, value: chunk });
      return;
    }
    this.#queue.push(chunk);
    if (this.#queue.length >= HIGH_WATER) this.pause();
  }

  end(error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    if (this.#queue.length > 0) return;
    const w = this.#waiting, f = this.#failWaiting;
    this.#waiting = this.#failWaiting = undefined;
    if (error !== undefined) f?.(error);
    else w?.({ done: true, value: undefined });
  }

  iterator(): AsyncIterator<Uint8Array> {
    return {
      next: (): Promise<IteratorResult<Uint8Array>> => {
        if (this.#queue.length > 0) {
          const value = this.#queue.shift()!;
          if (this.#queue.length < HIGH_WATER && !this.#done) this.resume();
          return Promise.resolve({ done: false, value });
        }
        if (this.#done) {
          return this.#error !== undefined
            ? Promise.reject(this.#error)
            : Promise.resolve({ done: true, value: undefined });
        }
        this.resume();
        return new Promise((resolve, reject) => {
          this.#waiting = resolve;
          this.#failWaiting = reject;
        });
      },
      return: (): Promise<IteratorResult<Uint8Array>> => {
        this.#done = true;
        this.stop();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }
}
