// A webhook endpoint in plain Node (node:http): verify the signature over the raw body,
// answer 2xx quickly, then act. Sendwerk retries anything else, so handle each event id once.
import { createServer, type Server } from "node:http";
import { verifyWebhook, WebhookVerificationError, type Event } from "@sendwerk/client";

export function webhookReceiver(secret: string, onEvent: (event: Event) => void): Server {
  const seen = new Set<string>();
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      try {
        // The raw bytes, not a re-serialised JSON object: the signature covers them exactly.
        const event = await verifyWebhook(Buffer.concat(chunks), req.headers, secret);
        res.writeHead(204).end();
        if (seen.has(event.id)) return; // at-least-once delivery: a retry of one already handled
        seen.add(event.id);
        onEvent(event);
      } catch (err) {
        res.writeHead(err instanceof WebhookVerificationError ? 401 : 400).end();
      }
    });
  });
}

// Narrowing on `type` gives each event's own `data`:
export function describe(event: Event): string {
  switch (event.type) {
    case "message.delivered":
      return `${event.message_id} delivered: ${event.data.reply?.code} (${event.data.recipients.join(", ")})`;
    case "message.failed":
      return `${event.message_id} failed: ${event.data.reason}`;
    case "connector.paused":
      return `connector ${event.data.name} paused: ${event.data.reason}`;
    default:
      return event.type;
  }
}
