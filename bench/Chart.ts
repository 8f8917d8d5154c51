/**
 * An SVG chart of benchmark rows: one panel per store and variant (each with its own linear
 * scale, since stores differ by orders of magnitude), one pair of bars per cell — ours beside
 * the raw-client baseline — labelled with the ratio, green where the row meets its target. The
 * rounds of one variant (rows whose variant ends in ", round N") share a panel, a pair per round.
 */
import type { Row } from "./Report.js"

const panelWidth = 360
const panelHeight = 230
const columns = 2
const ours = "#2f6fdf"
const baseline = "#9aa5b1"

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
const compact = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k` : `${Math.round(n)}`

const niceMax = (n: number) => {
  const magnitude = 10 ** Math.floor(Math.log10(Math.max(n, 1)))
  return [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => m >= n) ?? n
}

const panel = (title: string, rows: ReadonlyArray<Row>, x0: number, y0: number, meetsTarget: (row: Row) => boolean): string => {
  const left = 48
  const top = 28
  const bottom = 42
  const plotWidth = panelWidth - left - 12
  const plotHeight = panelHeight - top - bottom
  const max = niceMax(Math.max(...rows.flatMap((r) => [r.ours.opsPerSec, r.baseline.measurement.opsPerSec])))
  const y = (v: number) => y0 + top + plotHeight - (v / max) * plotHeight
  const group = plotWidth / rows.length
  const bar = Math.min(26, group / 3)
  const parts: Array<string> = [
    `<text x="${x0 + 8}" y="${y0 + 18}" font-weight="600">${escape(title)}</text>`,
    ...[0, 0.5, 1].map((f) =>
      `<line x1="${x0 + left}" x2="${x0 + left + plotWidth}" y1="${y(max * f)}" y2="${y(max * f)}" stroke="#e3e7eb"/>` +
      `<text x="${x0 + left - 4}" y="${y(max * f) + 4}" text-anchor="end" font-size="10" fill="#5b6670">${compact(max * f)}</text>`
    )
  ]
  rows.forEach((r, i) => {
    const cx = x0 + left + group * i + group / 2
    const label = placement(r).round ?? `c${r.cell.concurrency} ${r.cell.keys === "hot" ? "hot" : `${r.cell.keys} keys`}`
    parts.push(
      `<rect x="${cx - bar - 1}" y="${y(r.ours.opsPerSec)}" width="${bar}" height="${y(0) - y(r.ours.opsPerSec)}" fill="${ours}"/>`,
      `<rect x="${cx + 1}" y="${y(r.baseline.measurement.opsPerSec)}" width="${bar}" height="${y(0) - y(r.baseline.measurement.opsPerSec)}" fill="${baseline}"/>`,
      `<text x="${cx}" y="${Math.min(y(r.ours.opsPerSec), y(r.baseline.measurement.opsPerSec)) - 4}" text-anchor="middle" font-size="10" fill="${meetsTarget(r) ? "#1b7f3b" : "#b42318"}">${r.ratio.toFixed(2)}×</text>`,
      `<text x="${cx}" y="${y(0) + 14}" text-anchor="middle" font-size="10" fill="#333">${escape(label)}</text>`
    )
  })
  return parts.join("\n")
}

// The panel a row goes in, and for a round of a repeated run (e.g. the SQLite multi-process
// rows, variant "4 processes, round 2") the label of its bars.
const placement = (row: Row): { readonly title: string; readonly round?: string } => {
  const round = /^(.*), (round \d+)$/.exec(row.variant)
  const variant = round === null ? row.variant : `${round[1]!}, ${row.cell.keys === "hot" ? "1 hot key" : `${row.cell.keys} keys`}`
  const title = variant === "" ? row.store : `${row.store} (${variant})`
  return round === null ? { title } : { title, round: round[2]! }
}

export const renderSvg = (rows: ReadonlyArray<Row>, subtitle: string, meetsTarget: (row: Row) => boolean): string => {
  const panels = new Map<string, Array<Row>>()
  for (const row of rows) {
    const { title } = placement(row)
    panels.set(title, [...(panels.get(title) ?? []), row])
  }
  const entries = [...panels]
  const width = columns * panelWidth
  const height = 56 + Math.ceil(entries.length / columns) * panelHeight + 10
  const body = entries.map(([title, panelRows], i) =>
    panel(title, panelRows, (i % columns) * panelWidth, 56 + Math.floor(i / columns) * panelHeight, meetsTarget)
  )
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="20" font-size="14" font-weight="600">Atomic modify, ops/s: ours vs the best raw-client method, same run</text>`,
    `<text x="8" y="38" font-size="11" fill="#5b6670">${escape(subtitle)}</text>`,
    `<rect x="${width - 190}" y="28" width="10" height="10" fill="${ours}"/><text x="${width - 176}" y="37" font-size="11">ours</text>`,
    `<rect x="${width - 130}" y="28" width="10" height="10" fill="${baseline}"/><text x="${width - 116}" y="37" font-size="11">raw baseline</text>`,
    ...body,
    `</svg>`
  ].join("\n")
}
