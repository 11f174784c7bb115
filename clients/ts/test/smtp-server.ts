// A minimal SMTP server on 127.0.0.1:0 that accepts every message, so connection tests and
// test e-mails have a real peer. Plain SMTP only (the connector uses `security: none`).
import { createServer, type Server, type Socket } from "node:net";

export interface ReceivedMessage {
  from: string;
  to: string[];
  data: string;
}

export interface SmtpServer {
  port: number;
  messages: ReceivedMessage[];
  close(): Promise<void>;
}

export async function startSmtpServer(): Promise<SmtpServer> {
  const messages: ReceivedMessage[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    session(socket, messages);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  return {
    port: address.port,
    messages,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function session(socket: Socket, messages: ReceivedMessage[]): void {
  let buffer = "";
  let inData = false;
  let current: ReceivedMessage = { from: "", to: [], data: "" };
  const reply = (line: string) => socket.write(line + "\r\n");
  reply("220 test.invalid ESMTP ready");
  socket.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("latin1");
    for (;;) {
      if (inData) {
        const end = buffer.indexOf("\r\n.\r\n");
        if (end < 0) return;
        current.data = buffer.slice(0, end);
        buffer = buffer.slice(end + 5);
        inData = false;
        messages.push(current);
        current = { from: "", to: [], data: "" };
        reply("250 2.0.0 Ok: queued as TS" + messages.length);
        continue;
      }
      const eol = buffer.indexOf("\r\n");
      if (eol < 0) return;
      const line = buffer.slice(0, eol);
      buffer = buffer.slice(eol + 2);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === "EHLO") {
        reply("250-test.invalid");
        reply("250-8BITMIME");
        reply("250 SMTPUTF8");
      } else if (verb === "HELO") reply("250 test.invalid");
      else if (verb === "MAIL") {
        current.from = /<([^>]*)>/.exec(line)?.[1] ?? "";
        reply("250 2.1.0 Ok");
      } else if (verb === "RCPT") {
        current.to.push(/<([^>]*)>/.exec(line)?.[1] ?? "");
        reply("250 2.1.5 Ok");
      } else if (verb === "DATA") {
        inData = true;
        reply("354 End data with <CR><LF>.<CR><LF>");
      } else if (verb === "RSET") {
        current = { from: "", to: [], data: "" };
        reply("250 2.0.0 Ok");
      } else if (verb === "NOOP") reply("250 2.0.0 Ok");
      else if (verb === "QUIT") {
        reply("221 2.0.0 Bye");
        socket.end();
        return;
      } else reply("502 5.5.2 Command not recognized");
    }
  });
}
