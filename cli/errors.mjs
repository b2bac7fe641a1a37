// meshctl's typed failures and the one place that explains them. Commands and the HTTP client
// throw; `explain` turns any failure into the message the user reads (what went wrong, then what
// to do next) and the exit code, so no command formats an error of its own.
/** Exit codes: 1 the operation failed (or a check did), 2 the command line was wrong. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** A failure meshctl has already put into words: `message`, then `lines` (one item a line). */
export class CliError extends Error {
  constructor(message, { lines = [], exitCode = EXIT_FAILED } = {}) {
    super(message);
    this.lines = lines;
    this.exitCode = exitCode;
  }
}

/** A command line meshctl cannot run; `command` names the command whose help to read. */
export class UsageError extends CliError {
  constructor(message, command) {
    super(message, { exitCode: EXIT_USAGE });
    this.command = command;
  }
}

/** The admin API answered with an error (`{ "error": { "code", "message", ... } }`). */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status
   * @param {string} code the contract's error code (`invalid_config`, `version_conflict`, ...)
   * @param {object} details the whole `error` object, and what the client knows of the call:
   *   `request` ("METHOD /path"), `connection`, and `locate` (issue → text naming file and line)
   */
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** The admin API could not be reached at all: refused, unknown host, no answer in time. */
export class UnreachableError extends Error {
  constructor(server, reason) {
    super(reason);
    this.server = server;
  }
}

/** How to pass an admin credential, for messages about a refused or missing one. */
const TOKEN_HELP =
  "pass the policy Worker's ADMIN_TOKEN with --token TOKEN (or set MESH_ADMIN_TOKEN)";
const SVID_HELP = "an admin JWT-SVID with --svid TOKEN";

/** Why the server did not accept who we said we were, given which credential was sent. */
function unauthenticated(connection) {
  const credential = connection?.credential;
  if (!credential) {
    return new CliError(
      `the admin API at ${connection?.server ?? "the server"} needs an admin credential, and none was sent`,
      {
        lines: [
          `${TOKEN_HELP}, or ${SVID_HELP}; the local development token is used only for a loopback --server`,
        ],
      },
    );
  }
  if (credential.kind === "svid") {
    return new CliError(`the admin API refused the SVID from ${credential.source}`, {
      lines: [
        "it may have expired, or its service is in neither ADMIN_SERVICES nor VIEWER_SERVICES;",
        `fetch a fresh one from the identity Worker, or ${TOKEN_HELP}`,
      ],
    });
  }
  if (credential.source === "local development token") {
    return new CliError("the admin API refused the local development token", {
      lines: [`this server has an ADMIN_TOKEN of its own: ${TOKEN_HELP}, or ${SVID_HELP}`],
    });
  }
  return new CliError(`the admin API refused the token from ${credential.source}`, {
    lines: [
      "check it is the policy Worker's ADMIN_TOKEN secret (`wrangler secret put ADMIN_TOKEN` sets it),",
      `or pass ${SVID_HELP}`,
    ],
  });
}

/** Puts an API error into words, with the next step for each code the contract defines. */
function explainApiError(error) {
  const { connection, locate, request } = error.details;
  switch (error.code) {
    case "invalid_config": {
      const issues = Array.isArray(error.details.issues) ? error.details.issues : [];
      const describe = locate ?? ((issue) => `${issue.path}: ${issue.message}`);
      return new CliError(
        `the admin API refused the config (${issues.length} ${issues.length === 1 ? "issue" : "issues"}); nothing changed`,
        { lines: issues.map(describe) },
      );
    }
    case "version_conflict": {
      const now = error.details.version;
      return new CliError(
        now === undefined
          ? "the config changed since the version --if-match names; nothing changed. Re-run with the current version (`meshctl status`) or without --if-match"
          : `the config changed (now version ${now}); re-run with --if-match ${now} or without. Nothing changed`,
      );
    }
    case "unauthenticated":
      return unauthenticated(connection);
    case "forbidden":
      return new CliError(`the admin API refused ${request}: ${error.message}`, {
        lines: [
          "the credential may only read (a viewer), or has no role at all; to write, pass --token with the ADMIN_TOKEN, or --svid with an SVID whose WorkloadCredential has roles [admin] (or of a service in ADMIN_SERVICES)",
        ],
      });
    case "not_found":
      return new CliError(`not found: ${error.message}`);
    case "internal_error":
      return new CliError(`the admin API failed on ${request}: ${error.message}`, {
        lines: [
          "this is a bug in the policy Worker; its log has the details (under the request id)",
        ],
      });
    default:
      if (error.status === 401) return unauthenticated(connection);
      if (error.code.startsWith("http_")) {
        // Not the admin API's error shape: likely another server at that address.
        return new CliError(
          `${connection?.server ?? "the server"} answered ${request} with ${error.status}, not as the admin API would: ${error.message}`,
          {
            lines: [
              "is --server the policy Worker (127.0.0.1:8788 under `npm start`), not the router?",
            ],
          },
        );
      }
      return new CliError(
        `the admin API answered ${request} with ${error.status} ${error.code}: ${error.message}`,
      );
  }
}

/**
 * The one rescue: what to print for a failure (`message`, `lines`), and the exit code. Errors
 * that are none of meshctl's are bugs and keep their stack.
 */
export function explain(error) {
  if (error instanceof ApiError) return explain(explainApiError(error));
  if (error instanceof UnreachableError) {
    return {
      message: `cannot reach the admin API at ${error.server}: ${error.message}`,
      lines: [
        "is `npm start` running? is --server right? (default: MESH_ADMIN_URL, else http://127.0.0.1:8788)",
      ],
      exitCode: EXIT_FAILED,
    };
  }
  if (error instanceof UsageError) {
    return {
      message: error.message,
      lines: [`run \`meshctl ${error.command ? `${error.command} ` : ""}--help\` for usage`],
      exitCode: error.exitCode,
    };
  }
  if (error instanceof CliError) {
    return { message: error.message, lines: error.lines, exitCode: error.exitCode };
  }
  return {
    message: "meshctl failed unexpectedly (a bug in meshctl)",
    lines: [error instanceof Error ? (error.stack ?? error.message) : String(error)],
    exitCode: EXIT_FAILED,
  };
}
