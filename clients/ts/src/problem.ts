import type { ConnectionTest, DomainCheckResult, FieldError, Problem } from "./schema.js";

/**
 * ProblemTypeValue is the union of every problem `type`, generated from openapi.yaml
 * (`Problem.type`): Sendwerk's `urn:sendwerk:problem:…` types, and `about:blank` for an error
 * body that was not a problem document (a proxy's page), as {@link toSendwerkError} wraps it.
 * A `switch` over it is checked by the compiler.
 */
export type ProblemTypeValue = Problem["type"];

/**
 * SMTPFailureCode is the union of the stable `code`s of connection tests and test e-mails
 * (`auth.failed`, `tls.not_tls`, …), generated from openapi.yaml.
 */
export type SMTPFailureCode = NonNullable<ConnectionTest["code"]>;

/** CheckCode is the union of the stable `code`s of DNS check results (`dkim.key_mismatch`, …), generated from openapi.yaml. */
export type CheckCode = DomainCheckResult["code"];

/**
 * ProblemType names the stable `type` of every problem document Sendwerk answers with.
 * Branch on these, never on `title` or `detail`, which are prose and may change.
 */
export const ProblemType = {
  Validation: "urn:sendwerk:problem:validation",
  MalformedRequest: "urn:sendwerk:problem:malformed-request",
  Unauthorized: "urn:sendwerk:problem:unauthorized",
  Forbidden: "urn:sendwerk:problem:forbidden",
  NotFound: "urn:sendwerk:problem:not-found",
  MethodNotAllowed: "urn:sendwerk:problem:method-not-allowed",
  Conflict: "urn:sendwerk:problem:conflict",
  PayloadTooLarge: "urn:sendwerk:problem:payload-too-large",
  UnsupportedMediaType: "urn:sendwerk:problem:unsupported-media-type",
  RateLimited: "urn:sendwerk:problem:rate-limited",
  Unavailable: "urn:sendwerk:problem:unavailable",
  Internal: "urn:sendwerk:problem:internal",
} as const satisfies Record<string, ProblemTypeValue>;

/** isProblem tells whether a value (an openapi-fetch `error`, a caught error's body) is a problem document. */
export function isProblem(value: unknown): value is Problem {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const v = value as Record<string, unknown>;
  return typeof v.type === "string" && typeof v.title === "string" && typeof v.status === "number";
}

/**
 * fieldErrors maps each offending field (`smtp.port`, `scopes[0]`) to its message, for
 * showing validation problems next to form inputs. Other problems give an empty object.
 */
export function fieldErrors(problem: Problem | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of problem?.errors ?? ([] as FieldError[])) {
    out[e.field] = e.message;
  }
  return out;
}

/** SendwerkError is thrown by {@link unwrap} and {@link paginate} when the API answers with a problem. */
export class SendwerkError extends Error {
  /** The problem document; a non-problem body (a proxy's HTML page) is wrapped as type `about:blank`. */
  readonly problem: Problem;
  /** The HTTP status. */
  readonly status: number;

  constructor(problem: Problem, status: number) {
    super(`${status} ${problem.title}${problem.detail ? `: ${problem.detail}` : ""}`);
    this.name = "SendwerkError";
    this.problem = problem;
    this.status = status;
  }

  /** The problem's stable type; compare it with {@link ProblemType}. */
  get type(): ProblemTypeValue {
    return this.problem.type;
  }

  /** Whether this is the given problem type. */
  is(type: ProblemTypeValue): boolean {
    return this.problem.type === type;
  }
}

/** toSendwerkError turns an openapi-fetch `error` into a {@link SendwerkError}. */
export function toSendwerkError(error: unknown, response: Response): SendwerkError {
  if (isProblem(error)) {
    return new SendwerkError(error, response.status);
  }
  const detail = typeof error === "string" ? error.slice(0, 200) : undefined;
  return new SendwerkError({ type: "about:blank", title: response.statusText || "HTTP error", status: response.status, detail }, response.status);
}

/** A result of an openapi-fetch call: data on success, error otherwise. */
export interface ApiResult<D, E> {
  data?: D;
  error?: E;
  response: Response;
}

/**
 * unwrap returns a call's data, or throws a {@link SendwerkError} when the API answered with an
 * error. Use it where an error should abort (scripts, loaders); check `error` yourself where a
 * problem is an expected outcome (forms).
 *
 *     const tenant = await unwrap(admin.POST("/v1/tenants", { body: { name: "Acme" } }));
 */
export async function unwrap<D, E>(call: Promise<ApiResult<D, E>> | ApiResult<D, E>): Promise<D> {
  const { data, error, response } = await call;
  if (error !== undefined || !response.ok) {
    throw toSendwerkError(error, response);
  }
  return data as D;
}
