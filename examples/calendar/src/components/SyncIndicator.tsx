import { useEffect, useState, type ReactNode } from 'react';
import type { SyncErrorInfo } from '@syncline/client';
import { formatAgo } from '../dates';
import { useReplica, useSyncStatus } from '../syncline';

function useOnline(): boolean {
  const [online, setOnline] = useState(() => navigator.onLine);
  useEffect(() => {
    const update = () => setOnline(navigator.onLine);
    window.addEventListener('online', update);
    window.addEventListener('offline', update);
    return () => {
      window.removeEventListener('online', update);
      window.removeEventListener('offline', update);
    };
  }, []);
  return online;
}

function useTick(ms: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}

/** The last time everything was synced, kept across reloads (the engine only knows this session's). */
function useLastSynced(name: string, current: number | undefined): number | undefined {
  const key = `syncline-calendar:${name}:last-synced`;
  const [stored, setStored] = useState(() => Number(localStorage.getItem(key)) || undefined);
  useEffect(() => {
    if (current) localStorage.setItem(key, String(current));
  }, [key, current]);
  // The tab that holds the connection writes it; the others hear about it here.
  useEffect(() => {
    const onStorage = (e: StorageEvent) => e.key === key && setStored(Number(e.newValue) || undefined);
    window.addEventListener('storage', onStorage);
    return () => window.removeEventListener('storage', onStorage);
  }, [key]);
  return current ?? stored;
}

const minutes = (ms: number): string => {
  const m = Math.round(Math.abs(ms) / 60_000);
  return m >= 120 ? `${Math.round(m / 60)} hours` : `${m} minute${m === 1 ? '' : 's'}`;
};

/** Refusals that go away by themselves (the engine retries). */
const TRANSIENT: ReadonlySet<string> = new Set(['rate_limited', 'slow_consumer', 'too_many_connections', 'shutting_down']);

/** What a server refusal means for the person using the calendar. */
export function describeSyncError(error: SyncErrorInfo, clockOffset: number | undefined, calendarName: (space: string) => string): { title: string; detail: string } {
  const kept = 'Your changes are kept on this device and will sync once this is fixed.';
  switch (error.code) {
    case 'unauthenticated':
      return { title: 'The sync server did not accept your sign-in.', detail: `The access token is missing, invalid or expired. ${kept}` };
    case 'forbidden':
      return {
        title: error.space ? `You do not have access to “${calendarName(error.space)}” on the sync server.` : 'The sync server refused access.',
        detail: `${error.message}. ${kept}`,
      };
    case 'clock_drift':
    case 'clock_overflow': {
      const off = clockOffset !== undefined && Math.abs(clockOffset) > 60_000 ? ` This device's clock is ${minutes(clockOffset)} ${clockOffset < 0 ? 'ahead of' : 'behind'} the server's.` : '';
      return { title: "The sync server refused changes: this device's clock is wrong.", detail: `Set the date and time correctly (automatic time).${off} ${kept}` };
    }
    case 'shutting_down':
      return { title: 'The sync server is restarting.', detail: 'Reconnecting automatically; your changes are kept on this device.' };
    case 'rate_limited':
    case 'slow_consumer':
    case 'too_many_connections':
      return { title: 'The sync server is busy.', detail: 'Retrying automatically; your changes are kept on this device.' };
    default:
      return { title: 'The sync server refused the connection.', detail: `${error.message} (${error.code}). ${kept}` };
  }
}

export interface SyncIndicatorProps {
  readonly syncUrl: string;
  readonly deviceLabel: string;
  readonly calendarName: (space: string) => string;
  /** Renames this device (the name other devices see in conflicts and presence). */
  readonly onRename?: (name: string) => void;
}

/** The name this device shows to others, editable. */
function DeviceName({ current, onRename }: { readonly current: string; readonly onRename: (name: string) => void }): ReactNode {
  const [name, setName] = useState(current);
  return (
    <form
      className="device-name"
      onSubmit={(e) => {
        e.preventDefault();
        if (name.trim()) onRename(name.trim().slice(0, 40));
      }}
    >
      <label>
        Name of this device
        <input value={name} maxLength={40} onChange={(e) => setName(e.target.value)} data-testid="device-name" />
      </label>
      <button type="submit" data-testid="device-name-save" disabled={!name.trim() || name.trim() === current}>
        Rename
      </button>
    </form>
  );
}

/** Online/offline, pending changes, last synced; click for details. */
export function SyncIndicator({ syncUrl, deviceLabel, calendarName, onRename }: SyncIndicatorProps): ReactNode {
  const replica = useReplica();
  const status = useSyncStatus();
  const online = useOnline();
  const now = useTick(15_000);
  const [open, setOpen] = useState(false);
  const lastSyncedAt = useLastSynced(replica.name, status.lastSyncedAt);

  let state: string;
  let label: string;
  if (!status.leader) {
    state = 'other-tab';
    label = 'Synced by another tab';
  } else if (status.error && !TRANSIENT.has(status.error.code) && status.state !== 'synced') {
    // Refused (sign-in, access, clock): retrying will not help until that is fixed.
    state = 'error';
    label = 'Not syncing';
  } else if (!online) {
    state = 'offline';
    label = 'Offline';
  } else if (status.state === 'synced' && status.error?.space) {
    // Everything else synced; the server refused one space (no access).
    state = 'partial';
    label = `Synced, except ${calendarName(status.error.space)}`;
  } else if (status.state === 'synced') {
    state = 'synced';
    label = 'Synced';
  } else if (status.state === 'syncing') {
    state = 'syncing';
    label = status.bootstrap ? `Downloading ${status.bootstrap.received} of ${status.bootstrap.total}` : 'Syncing…';
  } else if (status.state === 'connecting') {
    state = 'connecting';
    label = 'Connecting…';
  } else if (online) {
    // The network is up but the server cannot be reached (down, restarting, or the address is wrong).
    state = 'unreachable';
    const wait = status.retryAt !== undefined ? Math.max(0, Math.round((status.retryAt - now) / 1000)) : undefined;
    label = wait !== undefined && wait > 0 ? `Can't reach the server; retrying in ${wait} s` : "Can't reach the server";
  } else {
    state = 'offline';
    label = 'Offline';
  }
  const pending = status.pending > 0 ? `${status.pending} change${status.pending === 1 ? '' : 's'} to upload` : '';
  const last = lastSyncedAt ? `Last synced ${formatAgo(lastSyncedAt, now)}` : 'Not synced yet';

  return (
    <div className="sync">
      <button
        type="button"
        className={`sync-indicator sync-${state}`}
        data-testid="sync-indicator"
        data-state={state}
        data-sync-state={status.state}
        data-pending={status.pending}
        data-online={online ? 'true' : 'false'}
        data-last-synced={lastSyncedAt ?? ''}
        aria-expanded={open}
        onClick={() => setOpen((o) => !o)}
        title={[label, pending, last].filter(Boolean).join(' · ')}
      >
        <span className="sync-dot" aria-hidden="true" />
        <span className="sync-label" data-testid="sync-label">
          {label}
        </span>
        {status.pending > 0 && (
          <span className="sync-pending" data-testid="sync-pending">
            {status.pending}
          </span>
        )}
      </button>
      {open && (
        <div className="sync-details" data-testid="sync-details">
          <dl>
            <dt>Status</dt>
            <dd>{label}</dd>
            <dt>Network</dt>
            <dd>{online ? 'online' : 'offline'}</dd>
            <dt>Waiting to upload</dt>
            <dd data-testid="sync-details-pending">{status.pending === 0 ? 'nothing' : pending}</dd>
            <dt>Last synced</dt>
            <dd data-testid="sync-last">{lastSyncedAt ? `${new Date(lastSyncedAt).toLocaleString()} (${formatAgo(lastSyncedAt, now)})` : 'never'}</dd>
            {status.clockOffset !== undefined && Math.abs(status.clockOffset) > 60_000 && (
              <>
                <dt>Clock</dt>
                <dd className="warn">
                  {minutes(status.clockOffset)} {status.clockOffset < 0 ? 'ahead of' : 'behind'} the server
                </dd>
              </>
            )}
            <dt>Server</dt>
            <dd>{syncUrl}</dd>
            <dt>Device</dt>
            <dd>
              {deviceLabel} ({replica.name}, replica {replica.id})
            </dd>
          </dl>
          {onRename && <DeviceName current={deviceLabel} onRename={onRename} />}
          {status.leader && (status.state === 'offline' || status.state === 'stopped') && online && (
            <button type="button" onClick={() => replica.sync?.reconnectNow()} data-testid="sync-retry">
              Retry now
            </button>
          )}
        </div>
      )}
    </div>
  );
}

/** A banner when the server refuses (auth, clock skew…), with a way to give a token. */
export function SyncErrorBanner({ calendarName, onToken }: { readonly calendarName: (space: string) => string; readonly onToken: (token: string) => void }): ReactNode {
  const status = useSyncStatus();
  const [token, setToken] = useState('');
  const error = status.error;
  const [dismissed, setDismissed] = useState<SyncErrorInfo | undefined>();
  if (!error || error === dismissed) return null;
  const { title, detail } = describeSyncError(error, status.clockOffset, calendarName);
  return (
    <div className="banner banner-error" role="alert" data-testid="sync-error" data-code={error.code}>
      <div>
        <strong>{title}</strong> <span>{detail}</span>
      </div>
      {error.code === 'unauthenticated' && (
        <form
          className="token-form"
          onSubmit={(e) => {
            e.preventDefault();
            if (token.trim()) onToken(token.trim());
          }}
        >
          <input type="password" placeholder="Access token" aria-label="Access token" value={token} onChange={(e) => setToken(e.target.value)} data-testid="sync-token" />
          <button type="submit" data-testid="sync-token-save">
            Connect
          </button>
        </form>
      )}
      <button type="button" className="banner-close" aria-label="Dismiss" onClick={() => setDismissed(error)}>
        ×
      </button>
    </div>
  );
}
