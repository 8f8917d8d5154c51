/**
 * The stored form of a singleton's state: one JSON document per singleton, holding the state
 * (encoded by the user's `Schema`) with the fencing and bookkeeping fields around it.
 *
 * ```json
 * { "format": "durable-singleton/1", "schemaVersion": 2, "epoch": 7, "token": "…", "seq": 42,
 *   "updatedAt": 1764000000000, "lastSuccessAt": 1764000000000, "holder": "runner-a:34431",
 *   "state": { … } }
 * ```
 *
 * - `epoch` grows by one at every claim of leadership: it orders leaders, for people and logs.
 * - `token` is a random 128-bit identifier drawn at every claim: it is what fences writes. A
 *   write commits only if the stored token is the writer's own. Tokens are never reused, so even
 *   after the store is cleared (which restarts `epoch` at 1) a former leader can never write.
 * - `seq` grows by one at every write (claims included); it lets a leader tell whether a write
 *   whose outcome it did not learn (a lost connection) landed or not.
 * - `schemaVersion` is the version of the state's schema that wrote `state`.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/**
 * The value of the `format` field: identifies a document as an envelope of this version.
 *
 * @since 0.1.0
 * @category constants
 */
export const format = "durable-singleton/1"

/**
 * @since 0.1.0
 * @category schemas
 */
export const Envelope = Schema.Struct({
  format: Schema.Literal(format),
  schemaVersion: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  epoch: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  token: Schema.String.pipe(Schema.minLength(1)),
  seq: Schema.NonNegativeInt,
  updatedAt: Schema.Number,
  lastSuccessAt: Schema.NullOr(Schema.Number),
  holder: Schema.NullOr(Schema.String),
  state: Schema.Unknown
})

/**
 * @since 0.1.0
 * @category models
 */
export interface Envelope extends Schema.Schema.Type<typeof Envelope> {}

const decodeJson = ParseResult.decodeUnknownEither(Schema.parseJson(Envelope))

/**
 * Parses a stored value as an envelope (without decoding its `state`).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (raw: string): Either.Either<Envelope, ParseResult.ParseError> =>
  Either.mapLeft(decodeJson(raw), (issue) => new ParseResult.ParseError({ issue }))

/**
 * @since 0.1.0
 * @category parsing
 */
export const stringify = (envelope: Envelope): string => JSON.stringify(envelope)
