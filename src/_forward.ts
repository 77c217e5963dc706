// Stand-ins for web classes that build the real object only when needed:
// the Request view of Node's serve() bridge (runtimes/node_api/request.ts)
// and FastResponse (src/fast_response.ts).

/**
 * Defines on `proto` every method and getter of `from` whose key `skip`
 * does not hold, each forwarding to the real object `real(this)` returns.
 */
export function forwardTo(
  proto: object,
  from: object,
  skip: ReadonlySet<PropertyKey>,
  real: (self: unknown) => Record<PropertyKey, unknown>,
): void {
  for (const key of Reflect.ownKeys(from)) {
    if (skip.has(key)) continue;
    const d = Object.getOwnPropertyDescriptor(from, key)!;
    if (typeof d.value === "function") {
      Object.defineProperty(proto, key, {
        configurable: true,
        writable: true,
        value: function (this: unknown, ...args: unknown[]) {
          return (real(this)[key] as (...a: unknown[]) => unknown)(...args);
        },
      });
    } else if (d.get) {
      Object.defineProperty(proto, key, {
        configurable: true,
        get: function (this: unknown) {
          return real(this)[key];
        },
      });
    }
  }
}
