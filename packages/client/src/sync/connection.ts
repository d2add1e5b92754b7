/**
 * The transport under the sync engine: one connection to a sync server at a
 * time, each a stream of binary frames in order (FIFO, as over TCP). The engine
 * decides when to dial; a `Connect` makes one attempt. WebSocket is the one the
 * package ships (`webSocketConnect`); a test or an app can bring another
 * (`sync.connect`), as the simulation brings its in-memory network.
 */

/** One connection, as the engine uses it. */
export interface Connection {
  /** Sends one frame; dropped if the connection is not open. */
  send(frame: Uint8Array): void;
  /** Closes it; `closed` is not called back after this. Idempotent. */
  close(): void;
}

/** What a connection reports, in this order: `open` once (or never), frames, then `closed` once. */
export interface ConnectionHandlers {
  /** The connection is open and can send: the engine sends its hello. */
  open(): void;
  /** One binary frame from the server, in the order it was sent. */
  frame(bytes: Uint8Array): void;
  /** The connection failed to open, or was closed by the other side or the network. */
  closed(event: { readonly code: number; readonly reason: string }): void;
}

/** Makes one connection attempt. */
export type Connect = (handlers: ConnectionHandlers) => Connection;

/** The part of the WebSocket API the engine uses (browser WebSocket, or `ws` in Node). */
export interface SocketLike {
  /** Set to 'arraybuffer' before the first message. */
  binaryType: string;
  /** 1 while open, as in the WebSocket standard. */
  readonly readyState: number;
  /** Sends one binary frame. */
  send(data: Uint8Array): void;
  /** Closes the socket (idempotent). */
  close(code?: number, reason?: string): void;
  /** Called once the socket is open. */
  onopen: Handler<never> | null;
  /** Called once when the socket closes, with the close code and reason. */
  onclose: Handler<{ code: number; reason: string }> | null;
  /** Called on a socket error (a close follows). */
  onerror: Handler<never> | null;
  /** Called with each message; `data` is an ArrayBuffer (or a Node Buffer) for binary frames. */
  onmessage: Handler<{ data: unknown }> | null;
}

/**
 * An event handler checked bivariantly (declared through a method), so the
 * browser's WebSocket and the `ws` package's, whose handlers take their own
 * event classes, both fit `SocketLike` without a cast.
 */
type Handler<E> = { handle(event: E): void }['handle'];

/** A WebSocket class: the browser's global one, or `WebSocket` from the `ws` package in Node. */
export type SocketFactory = new (url: string) => SocketLike;

const OPEN = 1;

/**
 * WebSocket connections to `urls` (read at every dial: the list may grow), one
 * per call. After a connection closes, the next call dials the next URL:
 * several servers (instances of one deployment, or regions) are tried in turn.
 */
export function webSocketConnect(urls: () => readonly string[], Socket: SocketFactory): Connect {
  let index = 0;
  return (handlers) => {
    const list = urls();
    const url = list[index % list.length] as string;
    let done = false;
    const finish = (event: { code: number; reason: string }) => {
      if (done) return;
      done = true;
      index++; // fail over to the next URL, if there is one
      handlers.closed(event);
    };
    let socket: SocketLike;
    try {
      socket = new Socket(url);
    } catch (error) {
      // An invalid URL, or a socket the environment refuses: a failed attempt, reported like one.
      queueMicrotask(() => finish({ code: 1006, reason: `could not open a WebSocket to ${url}: ${String(error)}` }));
      return { send: () => undefined, close: () => (done = true) };
    }
    socket.binaryType = 'arraybuffer';
    // Node's `ws` (it has ping and terminate, which a browser's WebSocket has not) hands a binary frame over
    // without copying it into an ArrayBuffer when asked for 'nodebuffer': a Buffer, which is a Uint8Array.
    const ws = socket as unknown as { ping?: unknown; terminate?: unknown };
    if (typeof ws.ping === 'function' && typeof ws.terminate === 'function') socket.binaryType = 'nodebuffer';
    socket.onopen = () => handlers.open();
    socket.onmessage = (event) => {
      const data = event.data;
      if (data instanceof ArrayBuffer) handlers.frame(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) handlers.frame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      // Text frames are not Syncline's: ignored.
    };
    socket.onerror = () => undefined; // onclose follows
    socket.onclose = (event) => finish({ code: event.code, reason: event.reason });
    return {
      send: (frame) => {
        if (!done && socket.readyState === OPEN) socket.send(frame);
      },
      close: () => {
        if (done) return;
        done = true;
        socket.onopen = socket.onmessage = socket.onclose = null;
        try {
          socket.close(1000);
        } catch {
          // already closed
        }
      },
    };
  };
}
