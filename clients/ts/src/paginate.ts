import type { Client } from "openapi-fetch";
import type { paths } from "./schema.js";
import { toSendwerkError } from "./problem.js";

type ListBody = { items: unknown[]; next_cursor?: string };

/** ListPath is every path whose GET answers a cursor-paginated list: `{ items, next_cursor }`. */
export type ListPath = {
  [P in keyof paths]: paths[P] extends { get: { responses: { 200: { content: { "application/json": ListBody } } } } } ? P : never;
}[keyof paths];

type GetOperation<P extends ListPath> = paths[P] extends { get: infer O } ? O : never;
type GetParams<P extends ListPath> = GetOperation<P> extends { parameters: infer Q } ? Q : never;

/** ListItem is the element type of a list path's `items`. */
export type ListItem<P extends ListPath> = GetOperation<P> extends {
  responses: { 200: { content: { "application/json": { items: (infer I)[] } } } };
}
  ? I
  : never;

/** PageInit is what {@link paginate} passes on each request; `cursor` is filled in by it. */
export interface PageInit<P extends ListPath> {
  params?: GetParams<P>;
  signal?: AbortSignal;
}

// Paths with path parameters (`/v1/tenants/{tenant_id}/api-keys`) require init.
type InitArgs<P extends ListPath> = object extends GetParams<P> ? [init?: PageInit<P>] : [init: PageInit<P> & { params: GetParams<P> }];

/**
 * paginate yields every item of a list, page by page, following `next_cursor` until the
 * last page. Set `params.query.limit` for the page size. It throws a SendwerkError when a
 * page fails.
 *
 *     for await (const key of paginate(client, "/v1/api-keys")) console.log(key.name);
 */
export async function* paginate<P extends ListPath>(client: Client<paths>, path: P, ...[init]: InitArgs<P>): AsyncGenerator<ListItem<P>> {
  const params = (init?.params ?? {}) as { query?: Record<string, unknown> };
  let cursor: string | undefined;
  do {
    const query = { ...params.query, ...(cursor ? { cursor } : {}) };
    // The path is generic here; its GET options are checked at the call site through PageInit.
    const get = client.GET as unknown as (p: string, o: object) => Promise<{ data?: ListBody; error?: unknown; response: Response }>;
    const { data, error, response } = await get(path, { ...init, params: { ...params, query } });
    if (error !== undefined || !data) {
      throw toSendwerkError(error, response);
    }
    for (const item of data.items) {
      yield item as ListItem<P>;
    }
    cursor = data.next_cursor;
  } while (cursor);
}
