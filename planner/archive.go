package planner

// ActionArchive: a snapshot.archive job (ModifySnapshotTier to archive).
const ActionArchive = "archive"
