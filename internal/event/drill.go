package event

// DetailDrillResult: one restore of a drill ended; the detail is its recovery.Record
// (drill, at, account, region, policy, snapshot, volume, ok, error, seconds).
const DetailDrillResult = "snapfleet.DrillResult"
