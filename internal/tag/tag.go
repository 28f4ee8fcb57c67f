// Package tag names the tags snapfleet writes on every snapshot it creates (DESIGN.md §4)
// and the tags of other tools it must respect.
package tag

import "strings"

// Keys written by snapfleet in the CreateSnapshot call itself.
const (
	// Policy is the managed marker: snapfleet deletes nothing without it.
	Policy   = "snapfleet:policy"
	Job      = "snapfleet:job"
	Volume   = "snapfleet:volume"
	Instance = "snapfleet:instance"
	Device   = "snapfleet:device"
	// Expires is the RFC 3339 time after which age retention allows deletion.
	Expires = "snapfleet:expires"
	// AutoBackup is kept for the source script and console filters; its value is "true".
	AutoBackup = "AutoBackup"
	Name       = "Name"
	// Source, SourceRegion and SourceAccount are on a disaster-recovery copy: the
	// snapshot it was copied from. A snapshot carrying Source is a copy, never counted as a
	// snapshot of its volume at the source.
	Source        = "snapfleet:source"
	SourceRegion  = "snapfleet:source-region"
	SourceAccount = "snapfleet:source-account"
	// SourceTime is the source's StartTime (RFC 3339): the copy's retention dates it by
	// its source, not by when it was copied.
	SourceTime = "snapfleet:source-time"
	// Consistency is crash or application: what the snapshot really is (consistency:
	// application policies; a pre hook that failed and fell back is crash).
	Consistency = "snapfleet:consistency"
	// StoppedBy is written on an instance a cold backup stops, naming the job, before it
	// stops it: whoever finds it starts the instance again.
	StoppedBy = "snapfleet:stopped-by"
)

// Values of Consistency.
const (
	Crash       = "crash"
	Application = "application"
)

// Protected reports whether a tag key marks a snapshot owned by AWS Backup or Data
// Lifecycle Manager, which snapfleet never deletes.
func Protected(key string) bool {
	return strings.HasPrefix(key, "aws:backup:") || strings.HasPrefix(key, "aws:dlm:")
}
