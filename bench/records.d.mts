// Types for records.mjs, so the TypeScript browser page can import it.
// A type alias, not an interface: it must be assignable to Syncline's Fields (an index signature).
export type BenchEvent = {
  title: string;
  start: number;
  end: number;
  calendar: string;
  location: string;
  allDay: boolean;
  by: string;
};
export function event(i: number, replica?: string): BenchEvent;
