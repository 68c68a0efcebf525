// Minimal typings for the `ws` client (installed with miniflare; no @types/ws in the project).
declare module 'ws' {
  export default class WebSocket {
    constructor(url: string);
    once(event: 'open', cb: () => void): this;
    once(event: 'error', cb: (e: Error) => void): this;
    on(event: 'message', cb: (data: unknown) => void): this;
    send(data: string): void;
    close(): void;
  }
}
