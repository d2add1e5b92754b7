import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import { deviceFromLocation, ReplicaHost } from './data/host';
import { lang, t } from './i18n';
import './styles.css';

// The page speaks the catalogue's language (index.html says English).
document.documentElement.lang = lang;
document.title = t.documentTitle;

const host = new ReplicaHost(deviceFromLocation());
host.start();

createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <App host={host} />
  </StrictMode>,
);

// The service worker keeps the app shell so the calendar opens without a network
// (its data is in IndexedDB). Not in development: Vite serves modules unbundled.
if (import.meta.env.PROD && 'serviceWorker' in navigator) {
  window.addEventListener('load', () => {
    navigator.serviceWorker.register('/sw.js').catch((error: unknown) => console.warn('[calendar] service worker not registered:', error));
  });
}
