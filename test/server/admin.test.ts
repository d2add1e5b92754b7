/**
 * The admin listener (`adminPort`): operators' `/metrics` apart from the port
 * that clients and browsers reach, closed with the server.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createSyncServer, sqliteStorage } from '@syncline/server';
import { cleanupStack, silent } from '../sync/harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

describe('admin listener', () => {
  it('serves /metrics and /healthz on adminPort and no longer /metrics on port; nothing else; closes with the server', async () => {
    const server = createSyncServer({ port: 0, adminPort: 0, storage: sqliteStorage({ path: ':memory:' }), logger: silent });
    cleanup.push(() => server.close());
    expect(server.adminPort).toBe(0);
    await server.listen();
    expect(server.adminPort).toBeGreaterThan(0);
    expect(server.adminPort).not.toBe(server.port);
    const admin = `http://127.0.0.1:${server.adminPort}`;
    const metrics = await fetch(`${admin}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('syncline_connections');
    expect(await (await fetch(`${admin}/healthz`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${admin}/sync`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.port}/metrics`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status).toBe(200);
    await server.close();
    await expect(fetch(`${admin}/metrics`)).rejects.toThrow();
  });

  it('without adminPort, /metrics stays on port', async () => {
    const server = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), logger: silent });
    cleanup.push(() => server.close());
    await server.listen();
    expect(server.adminPort).toBe(0);
    expect((await fetch(`http://127.0.0.1:${server.port}/metrics`)).status).toBe(200);
  });
});
