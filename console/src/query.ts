import { Code, ConnectError } from "@connectrpc/connect";
import { keepPreviousData, QueryClient, QueryObserver, type QueryKey, type QueryObserverOptions, type QueryObserverResult } from "@tanstack/query-core";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";

/**
 * The cache behind every page. Errors the caller caused (bad token, bad
 * argument, missing row) are not retried; a refused token is handled by the
 * sign-in screen.
 */
export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 2_000,
      refetchOnWindowFocus: false,
      retry: (failures, error) => {
        const code = ConnectError.from(error).code;
        return failures < 2 && ![Code.Unauthenticated, Code.InvalidArgument, Code.NotFound, Code.PermissionDenied, Code.FailedPrecondition].includes(code);
      },
    },
  },
});

/** What a page asks the cache for. */
export interface QueryOptions<T> {
  readonly key: QueryKey;
  readonly fn: (signal: AbortSignal) => Promise<T>;
  /** Fetch again every this many milliseconds while the page shows it. */
  readonly refetchMs?: number;
  /** False holds the query back (a form not filled in yet). */
  readonly enabled?: boolean;
  /** Keep showing the previous key's data while the new key loads (paging, typing). */
  readonly keepPrevious?: boolean;
}

/**
 * Subscribes a component to one cached query (TanStack Query's observer, the
 * same one its framework adapters wrap), re-rendering on every change.
 */
export function useQuery<T>(options: QueryOptions<T>): QueryObserverResult<T> {
  const build = (): QueryObserverOptions<T, Error, T, T, QueryKey> => ({
    queryKey: options.key,
    queryFn: ({ signal }: { signal: AbortSignal }) => options.fn(signal),
    enabled: options.enabled ?? true,
    ...(options.refetchMs !== undefined ? { refetchInterval: options.refetchMs } : {}),
    ...(options.keepPrevious === true ? { placeholderData: keepPreviousData } : {}),
  });
  const [observer] = useState(() => new QueryObserver<T>(queryClient, build()));
  const [result, setResult] = useState(() => observer.getOptimisticResult(queryClient.defaultQueryOptions(build())));
  const keyHash = JSON.stringify(options.key, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  useEffect(() => {
    observer.setOptions(build());
    setResult(observer.getOptimisticResult(queryClient.defaultQueryOptions(build())));
    // The key (by value), the switch and the interval are what change a query.
  }, [keyHash, options.enabled, options.refetchMs]);
  useEffect(() => observer.subscribe(setResult), [observer]);
  return result;
}

/** State of one user action (save, replay, import). */
export interface Action<A extends unknown[], T> {
  readonly run: (...args: A) => Promise<T | undefined>;
  readonly pending: boolean;
  readonly error: unknown;
  readonly data: T | undefined;
  readonly reset: () => void;
}

/**
 * Wraps an action the user starts: tracks pending, result and error, and
 * after a success invalidates the cached queries whose key starts with one
 * of `invalidates`, so lists show the change.
 */
export function useAction<A extends unknown[], T>(fn: (...args: A) => Promise<T>, invalidates: readonly QueryKey[] = []): Action<A, T> {
  const [state, setState] = useState<{ pending: boolean; error: unknown; data: T | undefined }>({ pending: false, error: undefined, data: undefined });
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const run = useCallback(
    async (...args: A) => {
      setState({ pending: true, error: undefined, data: undefined });
      try {
        const data = await fnRef.current(...args);
        setState({ pending: false, error: undefined, data });
        await Promise.all(invalidates.map((queryKey) => queryClient.invalidateQueries({ queryKey })));
        return data;
      } catch (error) {
        setState({ pending: false, error, data: undefined });
        return undefined;
      }
    },
    // The keys are constants of the calling component.
    [],
  );
  const reset = useCallback(() => setState({ pending: false, error: undefined, data: undefined }), []);
  return { run, ...state, reset };
}
