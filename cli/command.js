'use strict'
// The CLI's commands, on commander: a command class whose usage errors are exceptions (not output
// and process.exit), command groups, and `run`, which reports errors and gives the exit code.
// A command is defined in one place (its options, defaults and help text); see cli/emulator.js.

const { Command, CommanderError } = require('commander')

/** Exit code of a usage error, and of any failure the CLI reports. */
const FAILURE_EXIT = 2

// Commander's outcomes that are help text on stdout, not errors.
const HELP_SHOWN = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version'])

/** A mistake in a command line; its message names what is wrong (`--max needs a whole number ...`). */
class UsageError extends CommanderError {
  constructor(message) {
    super(FAILURE_EXIT, 'bedrock-batch-bridge.usage', message)
    this.name = 'UsageError'
  }
}

/** The command's path below the program: `jobs show` (empty for the program itself). */
function commandPath(cmd) {
  const names = []
  for (let c = cmd; c.parent; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}

/**
 * A command whose subcommands (`.command(...)`) are of this class too. Commander's usage errors
 * are thrown as UsageError and help is thrown as a CommanderError with exit code 0, both for `run`
 * to handle; nothing here exits the process.
 */
class CliCommand extends Command {
  constructor(name) {
    super(name)
    this.exitOverride()
    // A subcommand's help lists the options of its group (see asGroup) too.
    this.configureHelp({ showGlobalOptions: true })
  }

  createCommand(name) {
    return new CliCommand(name)
  }

  copyInheritedSettings(parent) {
    super.copyInheritedSettings(parent)
    // A group takes any arguments (to name an unknown subcommand); its subcommands do not.
    return this.allowExcessArguments(false)
  }

  /** Commander calls this for every usage error (unknown option, missing value, extra argument, ...). */
  error(message, { code } = {}) {
    if (code === 'commander.missingArgument') {
      // Say what the command needs, in the words of the argument's description.
      const missing = this.registeredArguments.find((a, i) => a.required && this.args[i] == null)
      throw new UsageError(
        `${commandPath(this)} needs ${missing.description || missing.name()}\n\n${this.helpInformation()}`,
      )
    }
    throw new UsageError(message.replace(/^error: /, ''))
  }

  /**
   * Makes this command a group of subcommands: alone, it shows its help; an unknown subcommand is
   * an error that names it, followed by the help. Options of the group apply to every subcommand
   * (which reads them with `optsWithGlobals()`) and are listed in its help.
   */
  asGroup() {
    return this.helpCommand(true)
      .allowExcessArguments()
      .action((_options, cmd) => {
        if (cmd.args.length === 0) cmd.help()
        const path = commandPath(cmd)
        throw new UsageError(
          `unknown ${path ? `${path} ` : ''}command ${JSON.stringify(cmd.args[0])}\n\n${cmd.helpInformation()}`,
        )
      })
  }
}

/**
 * How a group lists its subcommands in its help: as command lines, `jobs show <jobArn|jobId>` (their
 * options are in their own help).
 * For a group: `group.configureHelp({ ...group.configureHelp(), subcommandTerm: (sub) => synopsis(group, sub) })`.
 */
function synopsis(group, sub) {
  const args = sub.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`))
  return [commandPath(group), sub.name(), ...args].filter(Boolean).join(' ')
}

/** The failure to report for `err` with its name first, as AWS tools print errors: `ResourceNotFoundException: ...`. */
function namedFailure(err) {
  return new Error(`${err?.name}: ${err?.message}`, { cause: err })
}

/**
 * Runs `program` on `argv` (the arguments after the script). Resolves with the exit code of help
 * (0) or of a failure (2, after printing `<program name>: <message>` on stderr); with undefined
 * when the command ran (it sets `process.exitCode` itself when it has one to give).
 */
async function run(program, argv) {
  try {
    await program.parseAsync(argv, { from: 'user' })
    return undefined
  } catch (err) {
    // Help asked for: 0. Help shown for a mistake (`help nonsense`): a failure, the help on stderr.
    if (err instanceof CommanderError && HELP_SHOWN.has(err.code)) return err.exitCode === 0 ? 0 : FAILURE_EXIT
    console.error(`${program.name()}: ${err?.message ?? err}`)
    return FAILURE_EXIT
  }
}

module.exports = { CliCommand, UsageError, synopsis, namedFailure, run }
