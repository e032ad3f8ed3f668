// The one client of the live sockets (/ws/stream/, /ws/flows/<id>/, /ws/topology/, /ws/alerts/;
// their messages are declared in dashboard/live_messages.py): a snapshot on connect, then
// numbered deltas. A delta that does not continue the numbering, or a reconnect, asks the server
// for a fresh snapshot, so a dropped message never leaves the page wrong. Reconnects back off
// from 0.5 s to 15 s. The close codes below are final (logged out, forbidden, gone): the socket
// stops and tells the page through onStatus("closed", reason) instead of knocking forever.

const FINAL_CODES = new Map([
  [4401, "Your session has ended. Log in again to see live updates."],
  [4403, "You may not watch this."],
  [4404, "This no longer exists."],
]);

export class LiveSocket {
  /**
   * @param {string} path e.g. "/ws/stream/"
   * @param {{onSnapshot: Function, onDelta: Function, onStatus?: Function, hello?: () => object|null}} handlers
   *   hello() returns the "subscribe" request to send after each (re)connect, if any.
   */
  constructor(path, handlers) {
    this.path = path;
    this.handlers = handlers;
    this.seq = null;
    this.socket = null;
    this.delay = 500;
    this.closedForGood = false;
    this.connect();
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${this.path}`;
  }

  status(state, message = "") {
    this.handlers.onStatus?.(state, message);
  }

  connect() {
    this.status("connecting");
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.delay = 500;
      this.status("live");
      const hello = this.handlers.hello?.();
      if (hello) this.send({ type: "subscribe", ...hello });
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.seq = null;
      if (FINAL_CODES.has(event.code)) {
        this.closedForGood = true;
        this.status("closed", FINAL_CODES.get(event.code));
        return;
      }
      if (this.closedForGood) return;
      this.status("reconnecting");
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 15000);
    });
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === "snapshot") {
      this.seq = message.seq;
      this.handlers.onSnapshot(message);
    } else if (message.type === "delta") {
      if (this.seq === null || message.first !== this.seq + 1) {
        // We missed something: ask for the whole view again rather than show a wrong one.
        this.seq = null;
        this.send({ type: "snapshot" });
        return;
      }
      this.seq = message.seq;
      this.handlers.onDelta(message);
    } else if (message.type === "error") {
      this.status("error", message.message);
    }
  }

  send(request) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(request));
  }

  close() {
    this.closedForGood = true;
    this.socket?.close();
  }
}

/** Show a socket's state in an element: a dot and a word, with the reason as its title. */
export function showStatus(element, state, message = "") {
  if (!element) return;
  const words = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", closed: "Offline", error: "Live", paused: "Paused" };
  element.dataset.state = state;
  element.textContent = words[state] || state;
  element.title = message;
}
