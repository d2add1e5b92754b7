// TinyBase cells hold only scalars (string, number, boolean): a record's nested values (objects,
// arrays) are stored as JSON strings. The benchmark's calendar events are flat, so in practice
// every field maps to one cell as it is.
export function toCells(record) {
  const cells = {};
  for (const [key, value] of Object.entries(record)) {
    if (value === undefined || value === null) continue;
    cells[key] = typeof value === 'object' ? JSON.stringify(value) : value;
  }
  return cells;
}
