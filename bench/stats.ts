/** Small statistics for benchmark reports: medians and a fixed-width table. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function reportTable(title: string, rows: Array<{ name: string; samples: number[] }>): string {
  const lines = [
    title,
    `  ${'variant'.padEnd(32)} ${'median'.padStart(9)} ${'min'.padStart(9)} ${'max'.padStart(9)}  n`,
  ];
  for (const r of rows) {
    const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`.padStart(9);
    lines.push(
      `  ${r.name.padEnd(32)} ${f(median(r.samples))} ${f(Math.min(...r.samples))} ${f(Math.max(...r.samples))}  ${r.samples.length}`,
    );
  }
  return lines.join('\n');
}
