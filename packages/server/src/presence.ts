/**
 * Presence (protocol 8): per space, the ephemeral state each connected replica
 * says about itself (a cursor, the week it looks at, what it edits), relayed to
 * the space's other clients and forgotten when its connection goes. Held in
 * this process's memory only: never logged, stored or sent to another instance
 * or region (the protocol docs, "Presence").
 */
import { encodeDownstream, fitFrames, type Json, type ReplicaId, type SpaceId } from '@syncline/core/internal';

/** A connection that takes part in the presence of its spaces (a session of a protocol 8 client). */
export interface PresenceMember {
  readonly replica: ReplicaId;
  /** The largest frame it may be sent. */
  readonly budget: number;
  /** Sends an encoded `presence` frame. */
  sendPresence(frame: Uint8Array): void;
}

interface Entry {
  readonly owner: PresenceMember;
  readonly state: Json;
}

type Peer = { replica: ReplicaId; state: Json | null };

export class PresenceRooms {
  /** Per space: who is there, and the state each replica set (the connection that set it owns it). */
  readonly #rooms = new Map<SpaceId, { members: Set<PresenceMember>; states: Map<ReplicaId, Entry> }>();

  /** `member` joins `space`: it is sent everyone else's state there now (the full list, in frames within its budget). */
  join(space: SpaceId, member: PresenceMember): void {
    let room = this.#rooms.get(space);
    if (!room) this.#rooms.set(space, (room = { members: new Set(), states: new Map() }));
    room.members.add(member);
    const peers: Peer[] = [];
    for (const [replica, entry] of room.states) if (replica !== member.replica) peers.push({ replica, state: entry.state });
    let first = true;
    for (const { frame } of fitFrames(peers, (slice) => encodeDownstream({ type: 'presence', space, full: first, peers: [...slice] }), member.budget)) {
      member.sendPresence(frame);
      first = false;
    }
    // An empty room still says so: the client's list starts from nothing.
    if (first) member.sendPresence(encodeDownstream({ type: 'presence', space, full: true, peers: [] }));
  }

  /** `member` set its state in `space` (null: it has none): everyone else there hears it. */
  set(space: SpaceId, member: PresenceMember, state: Json | null): void {
    const room = this.#rooms.get(space);
    if (!room?.members.has(member)) return;
    const current = room.states.get(member.replica);
    if (state === null) {
      if (!current) return;
      room.states.delete(member.replica);
    } else {
      room.states.set(member.replica, { owner: member, state });
    }
    this.#tell(space, room.members, member, { replica: member.replica, state });
  }

  /** `member`'s connection ended: it leaves `space`, and its state goes with it. */
  leave(space: SpaceId, member: PresenceMember): void {
    const room = this.#rooms.get(space);
    if (!room) return;
    room.members.delete(member);
    const entry = room.states.get(member.replica);
    // A replica that reconnected already set its state from the new connection: that one stays.
    if (entry?.owner === member) {
      room.states.delete(member.replica);
      this.#tell(space, room.members, member, { replica: member.replica, state: null });
    }
    if (room.members.size === 0) this.#rooms.delete(space);
  }

  /** One encoding for every other member (per frame budget). */
  #tell(space: SpaceId, members: ReadonlySet<PresenceMember>, from: PresenceMember, peer: Peer): void {
    const frame = encodeDownstream({ type: 'presence', space, peers: [peer] });
    for (const member of members) {
      if (member === from || member.replica === from.replica) continue;
      // A state within MAX_PRESENCE_BYTES always fits a frame of at least MIN_FRAME_BYTES.
      if (frame.length <= member.budget) member.sendPresence(frame);
    }
  }
}
