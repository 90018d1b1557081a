// One error type for everything the server or the network refuses, carrying the code of
// docs/errors.md, so a game can branch on `e.code === Code.Banned` wherever it came from.
import { CODE_TEXT, Code } from "./gen/rest.js";

/** The code of an error that never reached the server or got no answer (no HTTP status). */
export const NO_ANSWER = 0;

export class RsgameError extends Error {
  constructor(
    /** A code of {@link Code} (docs/errors.md), or {@link NO_ANSWER}. */
    readonly code: number,
    /** The server's message: written for developers; show players a text chosen by `code`. */
    message: string,
    /** The message id of the game request it answers (ErrorResp.reqId), when on the socket. */
    readonly reqId = 0,
  ) {
    super(message || CODE_TEXT[code] || `error ${code}`);
    this.name = "RsgameError";
  }

  /** Whether this is `code`. */
  is(code: Code): boolean {
    return this.code === code;
  }
}
