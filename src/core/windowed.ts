/**
 * Work over many items with a bounded number of them under way.
 *
 * Mapping 2000 releases to promises at once (`Promise.all(items.map(...))`
 * behind a limiter) parks every item's suspended async frame and limiter
 * entry on the heap until its turn comes: in a heap snapshot of `bundle
 * apply` at 2000 releases those waiting frames held 5.5 MiB, more than the
 * parsed bundle index. Starting an item only when a place frees keeps that
 * cost to `width` items, whatever the count. (`bundle create`, whose items
 * appear one by one as releases resolve, bounds them with a gate instead.)
 */

/** What forEachWindowed does besides the items. */
export interface WindowOptions {
  /** Checked before each item starts: once true, no further item starts and the run resolves when those under way settle. */
  stopped?: () => boolean;
}

/**
 * Calls `fn` on each item in order, with at most `width` calls not yet settled
 * at any time, and resolves once every call has settled. On the first
 * rejection no further item starts, and the returned promise rejects with
 * that error after the calls under way have settled (so nothing is left
 * running behind an error). Items are read from the iterable only as places
 * free, so an array, a generator or a Map's keys all cost nothing until used.
 */
export function forEachWindowed<T>(
  items: Iterable<T>,
  width: number,
  fn: (item: T, index: number) => Promise<void>,
  options: WindowOptions = {},
): Promise<void> {
  if (!Number.isInteger(width) || width < 1) {
    return Promise.reject(new RangeError(`window width must be a positive integer, got ${width}`));
  }
  return new Promise<void>((resolve, reject) => {
    const iterator = items[Symbol.iterator]();
    let index = 0;
    let active = 0;
    let exhausted = false;
    let ended = false;
    let failure: { error: unknown } | undefined;

    const settled = (): void => {
      active--;
      pump();
    };
    const failed = (error: unknown): void => {
      failure ??= { error };
      settled();
    };

    function pump(): void {
      while (failure === undefined && !exhausted && active < width) {
        if (options.stopped?.() === true) {
          exhausted = true;
          break;
        }
        let next: IteratorResult<T>;
        try {
          next = iterator.next();
        } catch (error) {
          failure = { error };
          break;
        }
        if (next.done === true) {
          exhausted = true;
          ended = true;
          break;
        }
        let call: Promise<void>;
        try {
          call = fn(next.value, index++);
        } catch (error) {
          // A call that throws before returning its promise fails like one that rejects.
          failure = { error };
          break;
        }
        active++;
        call.then(settled, failed);
      }
      if (active > 0) return;
      // Left early (a failure, or stopped): let a generator run its finally blocks.
      if (!ended) {
        ended = true;
        try {
          iterator.return?.();
        } catch {
          // The iteration is over either way; the failure that ended it is what is reported.
        }
      }
      // The item's own rejection, passed on unchanged (fn decides what it rejects with).
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      if (failure !== undefined) reject(failure.error);
      else resolve();
    }

    pump();
  });
}
