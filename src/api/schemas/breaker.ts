// The fleet coordinator's view as the API serves it (GET /breaker, POST /breaker/{trip,reset}).
import { Type, type Static } from '@sinclair/typebox';
import { BREAKER_STATES, HOLD_REASONS } from '../../policy/fleet';
import { Nullable, OneOf } from './state';

export const BreakerScopeSchema = Type.Object({
  scope: Type.String(),
  state: OneOf(BREAKER_STATES),
  since: Type.String(),
  manual: Type.Boolean(),
  armed: Type.Boolean(),
  trial: Nullable(Type.String()),
  by: Nullable(Type.String()),
  reason: Type.String(),
  open: Type.Integer(),
  total: Type.Integer(),
  affected: Type.Array(Type.String()),
});

export const BreakerStatusSchema = Type.Object({
  /** False until the first incident or command started the coordinator: every breaker is closed. */
  started: Type.Boolean(),
  scopes: Type.Array(BreakerScopeSchema),
  restartsInFlight: Type.Integer(),
  restartsInFlightByHost: Type.Record(Type.String(), Type.Integer()),
  held: Type.Array(
    Type.Object({
      host: Type.String(),
      service: Type.String(),
      reason: OneOf(HOLD_REASONS),
      detail: Type.String(),
      since: Type.String(),
    }),
  ),
  openIncidents: Type.Integer(),
});
export type BreakerStatus = Static<typeof BreakerStatusSchema>;

export const BreakerCommandBody = Type.Object(
  {
    /** `fleet` (default), `all`, a host name or `host:<name>`. */
    scope: Type.Optional(Type.String({ maxLength: 300 })),
    by: Type.Optional(Type.String({ maxLength: 100 })),
    reason: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);
