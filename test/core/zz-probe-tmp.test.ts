import { it, expect } from 'vitest';
import { decodeUpstream, encodeUpstream, ProtocolError } from '@syncline/core';
it('probe', () => {
  const deep = '['.repeat(1_000_000) + ']'.repeat(1_000_000);
  try { JSON.parse(deep); console.log('deep ok'); } catch (e) { console.log('deep err', (e as Error).constructor.name, (e as Error).message); }
  const msg = { type: 'push', space: 's', changes: [{ space: 's', collection: 'c', id: 'i', replica: 'r', seq: 1, hlc: '000000000001-0000-r', op: 'crdt', field: 'f', type: 'text', update: new Uint8Array([1,2,3]) }] } as never;
  const buf = Buffer.from(encodeUpstream(msg));
  const d = decodeUpstream(buf) as any;
  const u = d.changes[0].update;
  console.log('ctor', u.constructor.name, u.buffer === buf.buffer, u.buffer.byteLength);
  let eqMapOrder = true; try { expect(new Map([['a',1],['b',2]])).toEqual(new Map([['b',2],['a',1]])); } catch { eqMapOrder = false; }
  console.log('map order-insensitive', eqMapOrder);
  let u8 = true; try { expect(new Uint8Array([1])).toEqual(new Uint8Array([2])); } catch { u8 = false; }
  console.log('u8 compares', !u8);
  let bu = true; try { expect(Buffer.from([1])).toEqual(new Uint8Array([1])); } catch { bu = false; }
  console.log('buffer eq u8', bu);
  let z = true; try { expect({a: -0}).toEqual({a: 0}); } catch { z = false; }
  console.log('-0 eq 0', z);
  void ProtocolError;
});
