// What the browser pages share: unique database names, a log line (console and page), a bounded
// database delete, and window.__results / window.__error, which the drivers (bench/browser-lib.mjs) read.

declare global {
  interface Window {
    __results?: unknown;
    __error?: string;
  }
}

const nonce = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
let sequence = 0;

/** A name no other database of this page load has. */
export const freshName = (prefix: string): string => `${prefix}-${nonce}-${sequence++}`;

export function log(line: string): void {
  console.log(`[bench] ${line}`);
  const pre = document.getElementById('log');
  if (pre) pre.textContent += `${line}\n`;
}

/** Deletes one database; bounded, so a blocked delete fails instead of hanging the page. */
export function deleteDatabase(name: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase(name);
    const timer = setTimeout(() => reject(new Error(`deleting database "${name}" timed out (blocked by an open connection?)`)), timeoutMs);
    request.onsuccess = () => {
      clearTimeout(timer);
      resolve();
    };
    request.onerror = () => {
      clearTimeout(timer);
      reject(request.error ?? new Error(`deleting database "${name}" failed`));
    };
    request.onblocked = () => undefined; // keep waiting; the timer bounds it
  });
}
