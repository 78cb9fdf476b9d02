// PackML state -> colour, shared by the station tiles and the 3D view.
const GROUPS = {
  Execute: "#2e9d49",
  Idle: "#3f6f9f",
  Complete: "#1f8a8a",
  Suspended: "#c99a06", Suspending: "#c99a06", Unsuspending: "#c99a06",
  Held: "#e07b00", Holding: "#e07b00", Unholding: "#e07b00",
  Aborted: "#c62828", Aborting: "#c62828", Clearing: "#b0413e",
  Stopped: "#6b7480", Stopping: "#6b7480",
  Starting: "#5b8fd6", Resetting: "#5b8fd6", Completing: "#5b8fd6",
};

export function stateColor(state) {
  return GROUPS[state] || "#555555";
}

// KPI activity shares (stations' time_s) -> colour
export const ACTIVITY_COLORS = {
  execute: "#2e9d49", starved: "#c99a06", blocked: "#8e5bd6", idle: "#3f6f9f",
  held: "#e07b00", down: "#c62828", stopped: "#6b7480",
};
