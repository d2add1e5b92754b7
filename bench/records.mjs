// The benchmark record, shared by the Node scenarios (through lib.mjs) and the browser page.
export function event(i, replica = 'r') {
  // About 200 bytes of JSON, like a calendar event.
  return {
    title: `Meeting ${i} with the design team`,
    start: 1_790_000_000_000 + i * 3_600_000,
    end: 1_790_000_000_000 + i * 3_600_000 + 1_800_000,
    calendar: `cal-${i % 7}`,
    location: `Room ${i % 40}`,
    allDay: false,
    by: replica,
  };
}
