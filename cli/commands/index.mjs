// meshctl's commands, in the order `meshctl --help` lists them.
import { apply } from "./apply.mjs";
import { check } from "./check.mjs";
import { deleteCommand } from "./delete.mjs";
import { diff } from "./diff.mjs";
import { get } from "./get.mjs";
import { history } from "./history.mjs";
import { rollback } from "./rollback.mjs";
import { stat } from "./stat.mjs";
import { status } from "./status.mjs";
import { top } from "./top.mjs";
import { validate } from "./validate.mjs";

export const COMMANDS = [
  apply,
  diff,
  validate,
  get,
  deleteCommand,
  history,
  rollback,
  status,
  check,
  stat,
  top,
];
