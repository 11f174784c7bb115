// The problem `type` and failure `code` fields are string-literal unions generated from
// openapi.yaml: the compiler checks what a client branches on.
import { describe, expect, it } from "vitest";
import { ProblemType, problemTypeValues, connectionTestCodeValues, type CheckCode, type ProblemTypeValue, type SMTPFailureCode } from "@sendwerk/client";

describe("generated unions", () => {
  it("lists every problem type, and ProblemType names each of them", () => {
    expect(new Set(Object.values(ProblemType))).toEqual(new Set(problemTypeValues.filter((t) => t !== "about:blank")));
    // @ts-expect-error a type Sendwerk never answers with does not compile
    const wrong: ProblemTypeValue = "urn:sendwerk:problem:nope";
    expect(wrong).toBeDefined();
  });

  it("types failure codes", () => {
    const code: SMTPFailureCode = "auth.failed";
    const check: CheckCode = "dkim.key_mismatch";
    expect(connectionTestCodeValues).toContain(code);
    // @ts-expect-error a made-up code does not compile
    const bad: SMTPFailureCode = "auth.maybe";
    expect([check, bad]).toHaveLength(2);
  });
});
