/**
 * The relay's fan-out (packages/server/src/hub.ts) to followers at different
 * positions: each gets exactly the entries after its position, once, or is
 * told to read the log when it missed some. The followers here only record
 * what they are sent; sessions on real sockets are covered by the cluster and
 * sync tests.
 */
import { describe, expect, it } from 'vitest';
import { decodeDownstream, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { Hub, type Follower } from '../../packages/server/src/hub.js';
import type { LoggedChange } from '../../packages/server/src/storage/types.js';
import { putChange } from '../sync/harness.js';

const space = 'hub' as SpaceId;

class Recorder implements Follower {
  readonly budget = 1 << 20;
  readonly seqs: number[] = [];
  resyncs = 0;
  constructor(
    readonly replica: ReplicaId,
    public at: number,
    public live = true,
  ) {}
  sentUpTo(): number {
    return this.at;
  }
  held(): undefined {
    return undefined;
  }
  isLive(): boolean {
    return this.live;
  }
  deliver(_space: SpaceId, frame: Uint8Array | undefined, upTo: number): void {
    this.at = upTo;
    if (!frame) return;
    const message = decodeDownstream(frame);
    if (message.type !== 'changes') throw new Error(`expected changes, got ${message.type}`);
    this.seqs.push(...message.changes.map((c) => c.seq));
  }
  resync(): void {
    this.resyncs++;
  }
}

const entries = (from: number, to: number, replica = 'w' as ReplicaId): LoggedChange[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ pos: from + i, change: putChange(replica, space, from + i, { n: from + i }), origin: '', originPos: from + i }));

describe('hub relay', () => {
  it('sends each live follower the entries after its position: all, the rest, or none; one behind reads the log', () => {
    const hub = new Hub();
    const followers = {
      before: new Recorder('a' as ReplicaId, 10),
      partWay: new Recorder('b' as ReplicaId, 12),
      ahead: new Recorder('c' as ReplicaId, 15),
      behind: new Recorder('d' as ReplicaId, 8),
      catchingUp: new Recorder('e' as ReplicaId, 11, false),
    };
    for (const f of Object.values(followers)) hub.follow(space, f);
    expect(hub.lowestLive(space)).toBe(8);

    const sent = hub.relay(space, entries(11, 15), 1000);
    expect(followers.before.seqs).toEqual([11, 12, 13, 14, 15]);
    expect(followers.partWay.seqs).toEqual([13, 14, 15]);
    expect(followers.ahead.seqs).toEqual([]);
    expect([followers.behind.seqs, followers.behind.resyncs]).toEqual([[], 1]);
    expect([followers.catchingUp.seqs, followers.catchingUp.resyncs]).toEqual([[], 0]);
    expect(sent).toBe(8);
    expect([followers.before.at, followers.partWay.at, followers.ahead.at, followers.behind.at]).toEqual([15, 15, 15, 8]);
  });

  it("leaves out a follower's own changes, also in the rest of a batch it is part-way into", () => {
    const hub = new Hub();
    const writer = new Recorder('w' as ReplicaId, 2);
    const other = new Recorder('o' as ReplicaId, 0);
    hub.follow(space, writer);
    hub.follow(space, other);
    const batch = [...entries(1, 2, 'x' as ReplicaId), ...entries(3, 4, 'w' as ReplicaId), ...entries(5, 5, 'x' as ReplicaId)];
    hub.relay(space, batch, 1000);
    expect(writer.seqs).toEqual([5]);
    expect(writer.at).toBe(5);
    expect(other.seqs).toEqual([1, 2, 3, 4, 5]);
  });
});
