// An authoritative DNS server on 127.0.0.1:0 (UDP) for the browser tests. It answers TXT
// queries from a map the test changes while it runs (name → list of values; a value longer
// than 255 bytes is served as several strings, as DNS requires); every other name is NXDOMAIN.
import { createSocket } from "node:dgram";

export async function startDnsServer() {
  const txt = new Map();
  const socket = createSocket("udp4");
  socket.on("message", (msg, rinfo) => {
    const resp = answer(msg, txt);
    if (resp) socket.send(resp, rinfo.port, rinfo.address);
  });
  await new Promise((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    /** set publishes the TXT values of a name (no trailing dot); [] removes it. */
    set(name, values) {
      if (values.length) txt.set(name.toLowerCase(), values);
      else txt.delete(name.toLowerCase());
    },
    clear: () => txt.clear(),
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

function answer(msg, txt) {
  if (msg.length < 12) return undefined;
  const id = msg.readUInt16BE(0);
  const rd = msg[2] & 0x01;
  let off = 12;
  const labels = [];
  while (off < msg.length && msg[off] !== 0) {
    const len = msg[off];
    labels.push(msg.subarray(off + 1, off + 1 + len).toString("latin1"));
    off += 1 + len;
  }
  off += 1;
  const qtype = msg.readUInt16BE(off);
  const question = msg.subarray(12, off + 4);
  const name = labels.join(".").toLowerCase();
  const values = txt.get(name);
  const answers = [];
  if (values && qtype === 16) {
    for (const value of values) {
      const bytes = Buffer.from(value, "utf8");
      const chunks = [];
      let i = 0;
      do {
        const part = bytes.subarray(i, i + 255);
        chunks.push(Buffer.from([part.length]), part);
        i += 255;
      } while (i < bytes.length);
      const rdata = Buffer.concat(chunks);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
      rr.writeUInt16BE(16, 2); // TXT
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(rdata.length, 10);
      answers.push(rr, rdata);
    }
  }
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header[2] = 0x84 | rd; // QR, AA
  header[3] = values || txtHasChild(txt, name) ? 0 : 3; // NOERROR or NXDOMAIN
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length / 2, 6);
  return Buffer.concat([header, question, ...answers]);
}

// A name with published names below it exists (NODATA, not NXDOMAIN).
function txtHasChild(txt, name) {
  for (const key of txt.keys()) if (key.endsWith("." + name)) return true;
  return false;
}
