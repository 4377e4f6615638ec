'use strict'
// Options whose values are checked: `checkedOption('--max <N>', 'list at most N jobs', wholeNumber(1))`.
// A bad value is a UsageError that names the option: `--max needs a whole number of at least 1, got "0"`.

const { Option } = require('commander')

const { UsageError } = require('./command.js')

/** "a", "a or b", "a, b or c". */
function oneOfText(values) {
  return values.length < 2 ? values.join('') : `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`
}

/** A whole number of at least `min`. */
function wholeNumber(min = 0) {
  return (text, flag) => {
    const n = Number(text)
    if (!Number.isInteger(n) || n < min)
      throw new UsageError(
        `${flag} needs a whole number${min > 0 ? ` of at least ${min}` : ''}, got ${JSON.stringify(text)}`,
      )
    return n
  }
}

/** A number of seconds above 0. */
function seconds(text, flag) {
  const n = Number(text)
  if (!(Number.isFinite(n) && n > 0))
    throw new UsageError(`${flag} needs a number of seconds above 0, got ${JSON.stringify(text)}`)
  return n
}

/** An amount of US dollars above 0 (`2.5`). */
function usd(text, flag) {
  const n = Number(text)
  if (!(Number.isFinite(n) && n > 0))
    throw new UsageError(`${flag} needs an amount of USD above 0, got ${JSON.stringify(text)}`)
  return n
}

/** A moment: an ISO 8601 time (`2026-12-07T10:00:00Z`) or epoch milliseconds; the Date. */
function instant(text, flag) {
  const n = /^\d+$/.test(text) ? Number(text) : Date.parse(text)
  if (!Number.isFinite(n) || n < 0)
    throw new UsageError(`${flag} needs an ISO 8601 time or epoch milliseconds, got ${JSON.stringify(text)}`)
  return new Date(n)
}

/** One of `values`. */
function oneOf(...values) {
  return (text, flag) => {
    if (!values.includes(text))
      throw new UsageError(`${flag} must be ${oneOfText(values)}, got ${JSON.stringify(text)}`)
    return text
  }
}

/**
 * An option (commander's `Option`, so `.default(...)` and the rest chain on) whose value is
 * `check(text, flag)`: the value, or a UsageError naming the flag. The error passes through
 * commander as it is (commander would rewrite an InvalidArgumentError's message).
 */
function checkedOption(flags, description, check) {
  const option = new Option(flags, description)
  return option.argParser((text) => check(text, option.long))
}

module.exports = { checkedOption, wholeNumber, seconds, usd, oneOf, instant }
