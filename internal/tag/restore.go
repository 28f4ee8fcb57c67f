package tag

// Keys written on the volumes restore and drill make (DESIGN.md §4).
const (
	// RestoredFrom is on every volume restore and drill make: the snapshot it came from.
	RestoredFrom = "snapfleet:restored-from"
	// Drill is on a drill's throw-away volumes, its value the drill id: a drill deletes
	// only volumes carrying it.
	Drill = "snapfleet:drill"
)
