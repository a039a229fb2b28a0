/**
 * A TCP proxy on 127.0.0.1 in front of a local port, for tests that take etcd away from one
 * client while the others keep it:
 * - `stall(true)`: bytes from either side are dropped, connections stay open (a hung server
 *   or a black-holed path); `stall(false)` lets them through again;
 * - `shut()`: every connection is cut and new ones are refused at once (the client's watch
 *   then falls behind whatever happens meanwhile, e.g. a compaction); `open()` ends that.
 */
import { connect, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  stall(on: boolean): void;
  shut(): void;
  open(): void;
  close(): Promise<void>;
}

export async function tcpProxy(targetPort: number): Promise<TcpProxy> {
  let stalled = false;
  let shut = false;
  const sockets = new Set<Socket>();
  const srv = createServer((down) => {
    if (shut) {
      down.destroy();
      return;
    }
    const up = connect(targetPort, '127.0.0.1');
    for (const s of [up, down]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        up.destroy();
        down.destroy();
      });
    }
    down.on('data', (b) => {
      if (!stalled) up.write(b);
    });
    up.on('data', (b) => {
      if (!stalled) down.write(b);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as { port: number }).port}`,
    stall: (on) => {
      stalled = on;
    },
    shut: () => {
      shut = true;
      for (const s of sockets) s.destroy();
    },
    open: () => {
      shut = false;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}
