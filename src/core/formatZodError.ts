/**
 * One line per validation failure, `field.path: message`, joined: the wording every
 * schema error uses (configuration, workloads, machine profiles, request bodies).
 */
import type { ZodError } from "zod";

export function formatZodError(e: ZodError): string {
  return e.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`).join("; ");
}
