"""Terminal-facing API area: what terminals call, and the contracts shared with the edge agent."""
