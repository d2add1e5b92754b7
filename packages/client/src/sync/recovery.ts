/**
 * What the engine does about each error the server sends: the one place the
 * client README's error table is kept in code. Every error ends the push it
 * refused, and none leaves the engine retrying something retrying cannot fix.
 */
import type { ErrorCode } from '@syncline/core/internal';

export type Recovery =
  /** The frame was dropped unread (`rate_limited`): every push in flight is sent again after `retryAfter`, at a slower pace. */
  | 'resend'
  /** Push fewer changes at once (`batch_too_large`), then again. */
  | 'shrink-batch'
  /** Re-stamp changes stamped too far ahead (`clock_drift`), then push again; a fresh welcome if nothing moved. */
  | 'restamp'
  /** `below_horizon`: re-stamp the changes from the first one at or below the announced horizon on, then push again. */
  | 'push-again'
  /** This space stops pushing, with the code in `status.stoppedSpaces`, until `reconnectNow()`; the others go on. */
  | 'stop-space'
  /**
   * `sequence_gap` from a server with a region: earlier changes of this replica,
   * acknowledged by another region, have not reached this one yet (they arrive
   * over the region link). This space pushes again later, backing off; nothing stops.
   */
  | 'wait'
  /** Push smaller frames (`frame_too_large`), reconnecting. */
  | 'shrink-frame'
  /** Reconnect after a backoff (and `retryAfter`). */
  | 'reconnect'
  /**
   * `replica_retired`: the replica goes on under a new id, its unsynced changes
   * set aside and written again as new ones once each space has caught up
   * (client README, "Bounded growth"); it dials again at once.
   */
  | 'rejoin'
  /** Retrying cannot fix it: the engine stops (state `stopped`) until `reconnectNow()` or `setToken()`. */
  | 'stop';

export function recoveryFor(error: { readonly code: ErrorCode; readonly fatal: boolean; readonly space?: string | undefined }, freshTokens: boolean, regions = false): Recovery {
  const { code } = error;
  if (error.fatal) {
    switch (code) {
      case 'unsupported_protocol':
        return 'stop';
      case 'replica_retired':
        return 'rejoin';
      // The same token would be refused again; a token function may give a fresh one.
      case 'unauthenticated':
      case 'forbidden':
        return freshTokens ? 'reconnect' : 'stop';
      case 'frame_too_large':
        return 'shrink-frame';
      default:
        return 'reconnect';
    }
  }
  switch (code) {
    case 'rate_limited':
      return 'resend';
    case 'batch_too_large':
      return 'shrink-batch';
    case 'clock_drift':
      return 'restamp';
    case 'below_horizon':
      return error.space !== undefined ? 'push-again' : 'resend';
    case 'sequence_gap':
      if (regions && error.space !== undefined) return 'wait';
      return error.space !== undefined ? 'stop-space' : 'resend';
    // Anything else refuses a space's push for good (forbidden, invalid_message, sequence_gap,
    // clock_overflow): the same push would be refused again.
    default:
      return error.space !== undefined ? 'stop-space' : 'resend';
  }
}
