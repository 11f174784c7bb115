// A small SMTP server on 127.0.0.1:0 for the browser tests: plain SMTP (the connector uses
// `security: none`), AUTH PLAIN and LOGIN against one user, every message kept in memory;
// recipients greylist@… get 451.
import { createServer } from "node:net";

export async function startSmtpServer({ username, password }) {
  const messages = [];
  const sockets = new Set();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    session(socket, messages, { username, password });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: server.address().port,
    messages,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function session(socket, messages, creds) {
  let buffer = "";
  let inData = false;
  let authStep = ""; // "", "login-user", "login-pass", "plain"
  let loginUser = "";
  let current = { from: "", to: [], data: "" };
  const reply = (line) => socket.write(line + "\r\n");
  const b64 = (s) => Buffer.from(s, "base64").toString("utf8");
  const checkAuth = (user, pass) => reply(user === creds.username && pass === creds.password ? "235 2.7.0 Authentication successful" : "535 5.7.8 Authentication credentials invalid");
  reply("220 mx.test.invalid ESMTP ready");
  socket.on("data", (chunk) => {
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
        reply(`250 2.0.0 Ok: queued as T${messages.length}`);
        continue;
      }
      const eol = buffer.indexOf("\r\n");
      if (eol < 0) return;
      const line = buffer.slice(0, eol);
      buffer = buffer.slice(eol + 2);
      if (authStep === "plain") {
        authStep = "";
        const [, user, pass] = b64(line).split("\0");
        checkAuth(user, pass);
        continue;
      }
      if (authStep === "login-user") {
        loginUser = b64(line);
        authStep = "login-pass";
        reply("334 UGFzc3dvcmQ6");
        continue;
      }
      if (authStep === "login-pass") {
        authStep = "";
        checkAuth(loginUser, b64(line));
        continue;
      }
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === "EHLO") {
        reply("250-mx.test.invalid");
        reply("250-8BITMIME");
        reply("250-AUTH PLAIN LOGIN");
        reply("250 SMTPUTF8");
      } else if (verb === "HELO") reply("250 mx.test.invalid");
      else if (verb === "AUTH") {
        const [, mech, initial] = line.split(" ");
        if (mech?.toUpperCase() === "PLAIN") {
          if (initial) {
            const [, user, pass] = b64(initial).split("\0");
            checkAuth(user, pass);
          } else {
            authStep = "plain";
            reply("334 ");
          }
        } else if (mech?.toUpperCase() === "LOGIN") {
          authStep = "login-user";
          reply("334 VXNlcm5hbWU6");
        } else reply("504 5.5.4 Unrecognized authentication type");
      } else if (verb === "MAIL") {
        current.from = /<([^>]*)>/.exec(line)?.[1] ?? "";
        reply("250 2.1.0 Ok");
      } else if (verb === "RCPT") {
        const rcpt = /<([^>]*)>/.exec(line)?.[1] ?? "";
        // greylist@… is deferred, as greylisting servers do.
        if (rcpt.startsWith("greylist@")) reply("451 4.7.1 Greylisted, try again later");
        else {
          current.to.push(rcpt);
          reply("250 2.1.5 Ok");
        }
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
      } else reply("502 5.5.2 Command not implemented");
    }
  });
}
