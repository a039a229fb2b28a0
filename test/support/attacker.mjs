#!/usr/bin/env node
// An attacker's UDP sender for vtepd's attacker tests, run inside the attacker's namespace:
//
//   node attacker.mjs '{"to":"10.0.0.10","port":4789,"payloads":["hex",...],"count":1,"distinctPorts":false,"listenMs":1000}'
//
// Sends every payload `count` times to to:port. With distinctPorts each datagram leaves from
// a new socket (a new ephemeral source port: 20,000 "spokes"); otherwise all from one socket,
// which then listens `listenMs` for answers. Prints one JSON line: { sent, sentBytes,
// received, receivedBytes } (received: answers on the one socket; with distinctPorts the
// test counts answers with a capture instead).
import dgram from 'node:dgram';

const o = JSON.parse(process.argv[2]);
const payloads = o.payloads.map((h) => Buffer.from(h, 'hex'));
const count = o.count ?? 1;
let sent = 0;
let sentBytes = 0;
let received = 0;
let receivedBytes = 0;

const send = (sock, b) =>
  new Promise((resolve, reject) =>
    sock.send(b, o.port, o.to, (err) => {
      if (err) return reject(err);
      sent++;
      sentBytes += b.length;
      resolve();
    }),
  );

if (o.distinctPorts) {
  const batch = 256;
  const all = [];
  for (let i = 0; i < count; i++) for (const p of payloads) all.push(p);
  for (let i = 0; i < all.length; i += batch) {
    const socks = [];
    for (const b of all.slice(i, i + batch)) {
      const s = dgram.createSocket('udp4');
      socks.push(s);
      await send(s, b);
    }
    for (const s of socks) s.close();
  }
} else {
  const s = dgram.createSocket('udp4');
  s.on('message', (m) => {
    received++;
    receivedBytes += m.length;
  });
  if (o.srcPort) await new Promise((r) => s.bind(o.srcPort, r));
  for (let i = 0; i < count; i++) for (const p of payloads) await send(s, p);
  await new Promise((r) => setTimeout(r, o.listenMs ?? 1000));
  s.close();
}
console.log(JSON.stringify({ sent, sentBytes, received, receivedBytes }));
