/**
 * Webhook verification (Standard Webhooks). Written against the Web Crypto API rather than
 * node:crypto or the `standardwebhooks` package, so it runs unchanged in Node ≥ 20, Deno, Bun,
 * Cloudflare Workers and other edge runtimes, with no dependency; the test suite checks it
 * against the independent `standardwebhooks` package and against real deliveries.
 */
import type { Event } from "./schema.js";

/** WebhookVerificationError: the request is not from Sendwerk (or too old); answer 400 or 401. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

/** Headers as Node's IncomingMessage has them, as a fetch Headers, or a plain record. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

/** VerifyOptions tune {@link verifyWebhook}. */
export interface VerifyOptions {
  /** Largest accepted difference between the signature's timestamp and now; default 300 s. */
  toleranceSeconds?: number;
  /** The clock, for tests. */
  now?: () => Date;
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") {
    return (headers as Headers).get(name) ?? undefined;
  }
  const rec = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(rec).find((k) => k.toLowerCase() === name);
  const v = key === undefined ? undefined : rec[key];
  return Array.isArray(v) ? v.join(" ") : v;
}

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function toBase64(b: ArrayBuffer): string {
  let bin = "";
  for (const c of new Uint8Array(b)) bin += String.fromCharCode(c);
  return btoa(bin);
}

/** Compares in time independent of where the strings differ. */
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * verifyWebhook checks a delivery's `webhook-signature` (HMAC-SHA256 over
 * `${webhook-id}.${webhook-timestamp}.${body}` with the endpoint's `whsec_…` secret) and its
 * timestamp, and returns the typed event. Pass the body exactly as received (a string or the
 * raw bytes), before any JSON parsing. During a secret rotation a delivery carries two
 * signatures and verifies with either secret.
 *
 * Deliveries are at least once and unordered: deduplicate by `event.id` (the `webhook-id`)
 * and order one resource's events by `event.sequence`.
 */
export async function verifyWebhook(
  payload: string | Uint8Array,
  headers: WebhookHeaders,
  secret: string,
  options: VerifyOptions = {},
): Promise<Event> {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header");
  }
  const ts = Number(timestamp);
  if (!/^\d+$/.test(timestamp) || !Number.isSafeInteger(ts)) {
    throw new WebhookVerificationError("invalid webhook-timestamp header");
  }
  const now = Math.floor((options.now?.() ?? new Date()).getTime() / 1000);
  const tolerance = options.toleranceSeconds ?? 300;
  if (Math.abs(now - ts) > tolerance) {
    throw new WebhookVerificationError("webhook-timestamp is too far from now");
  }
  const body = typeof payload === "string" ? payload : new TextDecoder().decode(payload);
  const key = await crypto.subtle.importKey(
    "raw",
    fromBase64(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret) as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const expected = toBase64(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${id}.${timestamp}.${body}`)));
  const ok = signatures
    .split(" ")
    .some((s) => s.startsWith("v1,") && constantTimeEqual(s.slice(3), expected));
  if (!ok) {
    throw new WebhookVerificationError("no webhook-signature matches the secret");
  }
  return JSON.parse(body) as Event;
}
