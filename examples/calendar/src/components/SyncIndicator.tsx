import { useEffect, useState, type ReactNode } from 'react';
import type { SyncErrorInfo } from '@syncline/client';
import { formatAgo } from '../dates';
import { useReplica, useSyncStatus } from '../syncline';
import { t } from '../i18n';

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
  return m >= 120 ? t.hours({ count: Math.round(m / 60) }) : t.minutes({ count: m });
};

/** Refusals that go away by themselves (the engine retries). */
const TRANSIENT: ReadonlySet<string> = new Set(['rate_limited', 'slow_consumer', 'too_many_connections', 'shutting_down']);

/** What a server refusal means for the person using the calendar. */
export function describeSyncError(error: SyncErrorInfo, clockOffset: number | undefined, calendarName: (space: string) => string): { title: string; detail: string } {
  const kept = t.errorKept;
  switch (error.code) {
    case 'unauthenticated':
      return { title: t.errorSignIn, detail: `${t.errorToken} ${kept}` };
    case 'forbidden':
      return {
        title: error.space ? t.errorNoAccessTo({ calendar: calendarName(error.space) }) : t.errorForbidden,
        detail: `${error.message}. ${kept}`,
      };
    case 'clock_drift':
    case 'clock_overflow': {
      const off = clockOffset !== undefined && Math.abs(clockOffset) > 60_000 ? ` ${t.errorClockOff({ duration: minutes(clockOffset), ahead: clockOffset < 0 })}` : '';
      return { title: t.errorClock, detail: `${t.errorClockFix}${off} ${kept}` };
    }
    case 'shutting_down':
      return { title: t.errorRestarting, detail: t.errorRestartingDetail };
    case 'rate_limited':
    case 'slow_consumer':
    case 'too_many_connections':
      return { title: t.errorBusy, detail: t.errorBusyDetail };
    default:
      return { title: t.errorRefused, detail: `${error.message} (${error.code}). ${kept}` };
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
        {t.deviceName}
        <input value={name} maxLength={40} onChange={(e) => setName(e.target.value)} data-testid="device-name" />
      </label>
      <button type="submit" data-testid="device-name-save" disabled={!name.trim() || name.trim() === current}>
        {t.rename}
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
    label = t.syncOtherTab;
  } else if (status.error && !TRANSIENT.has(status.error.code) && status.state !== 'synced') {
    // Refused (sign-in, access, clock): retrying will not help until that is fixed.
    state = 'error';
    label = t.syncNotSyncing;
  } else if (!online) {
    state = 'offline';
    label = t.syncOffline;
  } else if (status.state === 'synced' && status.error?.space) {
    // Everything else synced; the server refused one space (no access).
    state = 'partial';
    label = t.syncPartial({ calendar: calendarName(status.error.space) });
  } else if (status.state === 'synced') {
    state = 'synced';
    label = t.syncSynced;
  } else if (status.state === 'syncing') {
    state = 'syncing';
    label = status.bootstrap ? t.syncDownloading({ received: status.bootstrap.received, total: status.bootstrap.total }) : t.syncSyncing;
  } else if (status.state === 'connecting') {
    state = 'connecting';
    label = t.syncConnecting;
  } else if (online) {
    // The network is up but the server cannot be reached (down, restarting, or the address is wrong).
    state = 'unreachable';
    const wait = status.retryAt !== undefined ? Math.max(0, Math.round((status.retryAt - now) / 1000)) : undefined;
    label = wait !== undefined && wait > 0 ? t.syncRetryingIn({ seconds: wait }) : t.syncUnreachable;
  } else {
    state = 'offline';
    label = t.syncOffline;
  }
  const pending = status.pending > 0 ? t.syncPending({ count: status.pending }) : '';
  const last = lastSyncedAt ? t.syncLast({ ago: formatAgo(lastSyncedAt, now) }) : t.syncNotYet;

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
            <dt>{t.detailsStatus}</dt>
            <dd>{label}</dd>
            <dt>{t.detailsNetwork}</dt>
            <dd>{online ? t.online : t.offline}</dd>
            <dt>{t.detailsPending}</dt>
            <dd data-testid="sync-details-pending">{status.pending === 0 ? t.nothing : pending}</dd>
            <dt>{t.detailsLastSynced}</dt>
            <dd data-testid="sync-last">{lastSyncedAt ? `${new Date(lastSyncedAt).toLocaleString()} (${formatAgo(lastSyncedAt, now)})` : t.never}</dd>
            {status.clockOffset !== undefined && Math.abs(status.clockOffset) > 60_000 && (
              <>
                <dt>{t.detailsClock}</dt>
                <dd className="warn">
                  {t.clockVsServer({ duration: minutes(status.clockOffset), ahead: status.clockOffset < 0 })}
                </dd>
              </>
            )}
            <dt>{t.detailsServer}</dt>
            <dd>{syncUrl}</dd>
            <dt>{t.detailsDevice}</dt>
            <dd>{t.deviceReplica({ label: deviceLabel, db: replica.name, replica: replica.id })}</dd>
          </dl>
          {onRename && <DeviceName current={deviceLabel} onRename={onRename} />}
          {status.leader && (status.state === 'offline' || status.state === 'stopped') && online && (
            <button type="button" onClick={() => replica.sync?.reconnectNow()} data-testid="sync-retry">
              {t.retryNow}
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
          <input type="password" placeholder={t.accessToken} aria-label={t.accessToken} value={token} onChange={(e) => setToken(e.target.value)} data-testid="sync-token" />
          <button type="submit" data-testid="sync-token-save">
            {t.connect}
          </button>
        </form>
      )}
      <button type="button" className="banner-close" aria-label={t.dismiss} onClick={() => setDismissed(error)}>
        ×
      </button>
    </div>
  );
}
