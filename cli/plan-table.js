'use strict'
// A dry run's plan (`client.plan()`, see RunPlan in index.d.ts) as a table for a terminal: one
// column per model and one for the total, one row per figure.

/** "1,234". */
function thousands(n) {
  return n.toLocaleString('en-US')
}

/** "$0.012345", or "no price" when the model has none. */
function dollars(usd) {
  return usd == null ? 'no price' : `$${usd.toFixed(6)}`
}

/** How a model's input tokens were counted, in words. */
function countedBy(model) {
  switch (model.inputTokensMethod) {
    case 'count-tokens':
      return 'CountTokens'
    case 'count-tokens-sample':
      return `CountTokens (${thousands(model.inputTokensCounted ?? 0)} counted, rest scaled)`
    case 'estimate':
      return 'estimate'
    default:
      return String(model.inputTokensMethod ?? '')
  }
}

/** The rows: a label and how to show the figure of a model (or of the total, which has no method). */
const ROWS = [
  ['jobs', (m) => thousands(m.jobs)],
  ['records (requests in jobs)', (m) => thousands(m.records)],
  ['padded records', (m) => thousands(m.paddedRecords)],
  ['requests at batch', (m) => thousands(m.requestsByTier.batch)],
  ['requests at flex', (m) => thousands(m.requestsByTier.flex)],
  ['requests at standard', (m) => thousands(m.requestsByTier.standard)],
  ['input tokens', (m) => thousands(m.inputTokens)],
  ['  counted by', (m) => (m.inputTokensMethod ? countedBy(m) : '')],
  ['output tokens, upper bound', (m) => thousands(m.outputTokensUpperBound)],
  ['requests without max tokens', (m) => thousands(m.requestsWithoutMaxTokens)],
  ['cost at these tiers (USD)', (m) => dollars(m.costUsd)],
  ['cost all standard (USD)', (m) => dollars(m.standardCostUsd)],
]

/**
 * The plan as lines of text: a header of model ids and "total", then a row per figure; labels on
 * the left, figures right-aligned.
 */
function planTable(plan) {
  const columns = [...plan.models.map((m) => ({ title: m.modelId, model: m })), { title: 'total', model: plan.total }]
  const cells = ROWS.map(([label, show]) => [label, ...columns.map((c) => show(c.model))])
  const header = ['', ...columns.map((c) => c.title)]
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i].length)))
  const line = (row) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[0]) : cell.padStart(widths[i])))
      .join('  ')
      .trimEnd()
  return [line(header), ...cells.map(line)]
}

/** What the figures are, below the table. */
const PLAN_NOTES = [
  "Costs are upper bounds: input tokens plus every request's maximum output tokens, at its tier's price",
  '(batch and Flex: 50% of the standard price; filler records at the batch price). Prices: the pricing',
  'option, else the table the package ships (us-east-1 list prices as of 2025-11; see docs/spend.md).',
  'Input tokens: "CountTokens" are counted by Bedrock; "estimate" is one token per 4 bytes of a request\'s text.',
]

module.exports = { planTable, PLAN_NOTES }
