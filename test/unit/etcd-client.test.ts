/**
 * The etcd client's pure parts, with no etcd: the prefix range end, and how batch() cuts
 * ops into txns (at most 128 ops, in order, a repeated key starting a new txn, a failed
 * txn stopping the batch). The client against a real etcd: test/native/etcd.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { EtcdClient, EtcdUnavailable, type Op, prefixEnd, type TxnRequest, type TxnResult } from '../../src/directory/etcd.js';

const unb64 = (s: string) => Buffer.from(s, 'base64').toString('latin1');

/** A client whose txn() records what it is given instead of calling etcd. */
function recording(failAt = -1): { client: EtcdClient; txns: TxnRequest[] } {
  const client = new EtcdClient({ endpoints: ['http://127.0.0.1:1'] });
  const txns: TxnRequest[] = [];
  client.txn = async (t: TxnRequest): Promise<TxnResult> => {
    if (txns.length === failAt) throw new EtcdUnavailable('down');
    txns.push(t);
    return { succeeded: true, revision: 100 + txns.length, responses: [] };
  };
  return { client, txns };
}

describe('etcd client: prefixEnd', () => {
  it('is the prefix with its last byte plus one', () => {
    expect(unb64(prefixEnd('/vtepd/v1/'))).toBe('/vtepd/v10');
    expect(unb64(prefixEnd('abc'))).toBe('abd');
  });
  it('the empty prefix means every key (range end "\\0")', () => {
    expect(unb64(prefixEnd(''))).toBe('\0');
  });
});

describe('etcd client: batch', () => {
  it('cuts 300 puts into txns of 128, 128 and 44, in order', async () => {
    const { client, txns } = recording();
    const ops: Op[] = Array.from({ length: 300 }, (_, i) => ({ type: 'put', key: `k${i}`, value: String(i) }));
    const r = await client.batch(ops);
    expect(r).toEqual({ txns: 3, revisions: [101, 102, 103] });
    expect(txns.map((t) => t.success?.length)).toEqual([128, 128, 44]);
    expect(txns.flatMap((t) => t.success ?? [])).toEqual(ops);
    expect(txns.every((t) => (t.compare ?? []).length === 0)).toBe(true);
    client.close();
  });

  it('starts a new txn when a key repeats, and honours a smaller maximum', async () => {
    const { client, txns } = recording();
    await client.batch([
      { type: 'put', key: 'a', value: '1' },
      { type: 'put', key: 'b', value: '1' },
      { type: 'delete', key: 'a' },
      { type: 'put', key: 'c', value: '1' },
    ]);
    expect(txns.map((t) => t.success?.map((o) => o.key))).toEqual([
      ['a', 'b'],
      ['a', 'c'],
    ]);
    txns.length = 0;
    await client.batch(
      Array.from({ length: 5 }, (_, i): Op => ({ type: 'put', key: `k${i}`, value: '' })),
      2,
    );
    expect(txns.map((t) => t.success?.length)).toEqual([2, 2, 1]);
    client.close();
  });

  it('stops at the first failed txn and rejects with its error', async () => {
    const { client, txns } = recording(1);
    const ops: Op[] = Array.from({ length: 300 }, (_, i) => ({ type: 'put', key: `k${i}`, value: '' }));
    await expect(client.batch(ops)).rejects.toBeInstanceOf(EtcdUnavailable);
    expect(txns).toHaveLength(1);
    client.close();
  });
});

describe('etcd client: errors from the gateway', () => {
  it('a streaming call’s wrapped error { error: { grpc_code, message } } keeps its message and code', async () => {
    const { createServer } = await import('node:http');
    const body = JSON.stringify({ error: { grpc_code: 14, http_code: 503, message: 'etcdserver: request timed out', http_status: 'Service Unavailable' } });
    const server = createServer((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const client = new EtcdClient({ endpoints: [`http://127.0.0.1:${port}`], timeoutMs: 2000 });
    try {
      const e = await client.keepAliveOnce('1').catch((err: Error) => err);
      expect(e).toBeInstanceOf(EtcdUnavailable);
      expect((e as Error).message).toContain('etcdserver: request timed out');
      expect((e as EtcdUnavailable).code).toBe(14);
    } finally {
      client.close();
      server.close();
    }
  });
});
