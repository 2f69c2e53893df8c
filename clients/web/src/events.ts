import type { Event } from "../../../gen/funnel/ingest/v1/ingest_pb.js";

/** `elementClick` → `element_click`: a generated (lowerCamelCase) name back to its `.proto` name. */
type Snake<S extends string> = S extends `${infer Head}${infer Tail}`
  ? `${Head extends Lowercase<Head> ? Head : `_${Lowercase<Head>}`}${Snake<Tail>}`
  : S;

/** The members of `Event.typed`: one per event type, each holding the type's generated message. */
type Typed = Exclude<Event["typed"], { case: undefined }>;

/**
 * An event message's fields under their `.proto` names, as `Event.data`
 * carries them. Event fields are scalars; any other kind would need its own
 * JSON encoding, so it types as `never` and fails to compile until handled.
 */
type Fields<M> = {
  [K in keyof M as K extends `$${string}` ? never : Snake<K & string>]: M[K] extends string | number | boolean ? M[K] : never;
};

/**
 * Every event type by its `.proto` name (`element_click`, …), with its fields.
 * Derived from the generated `Event.typed` oneof, so a new event message in
 * `proto/funnel/ingest/v1/ingest.proto` becomes trackable by regenerating `gen/`.
 */
export type EventTypes = { [T in Typed as Snake<T["case"]>]: Fields<T["value"]> };

/** The name of an event type: `element_click`, `page_view_start`, … */
export type EventName = keyof EventTypes;
