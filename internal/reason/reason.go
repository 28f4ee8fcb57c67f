// Package reason is the one list of the reason codes snapfleet reports: the plan's
// decisions (plan --dry-run, the planner's logs), the worker's skips and snoozes, and the
// dead letters (dlq list). They are stable strings: operators filter logs and the
// dead-letter queue by them, and README's tables list them. A protection has one name
// wherever it is found, by the planner or by the worker. The package imports nothing.
package reason

// The plan's create decisions.
const (
	// Due: the volume has no snapshot of the policy in the current period.
	Due = "due"
	// Done: a snapshot of the current period exists (dated in it, at most the planner's
	// clock allowance after now) or one carries this period's job key.
	Done = "done"
	// Event: the volume is snapshotted for an event (plan --event).
	Event = "event"
	// NotOptedIn: the instance of a state change does not carry the opt-in tag.
	NotOptedIn = "not_opted_in"
	// Excluded: an exclude tag of the policy is on the instance or the volume (the worker
	// skips a create for it too).
	Excluded = "excluded"
	// BootExcluded: the root volume of an instance whose policy has exclude_boot.
	BootExcluded = "exclude_boot"
)

// The plan's keep and delete decisions, besides retention's own (retention.Kept*,
// retention.Expired).
const (
	// CircuitBreaker: the account-region's deletes are held.
	CircuitBreaker = "circuit_breaker"
	// UnknownVolume: an adopted snapshot names no usable volume; never deleted.
	UnknownVolume = "unknown_volume"
	// UnknownPolicy: the snapshot's (or the job's) policy is not in the config; never
	// deleted, and a job naming it is dead-lettered.
	UnknownPolicy = "unknown_policy"
	// NotCompleted: a pending or failed snapshot neither counts nor goes.
	NotCompleted = "not_completed"
	// FailClosed: retention would expire the snapshot, but something in its scope could
	// not be read (listing error, missing start time, unparseable tag).
	FailClosed = "fail_closed"
	// Duplicate: a delete of a duplicate creation of a job key (two workers created for
	// one key): another set of the key is its keeper (job.Keeper), completed. Retention
	// does not count it; the worker re-checks the key's snapshots before it deletes.
	Duplicate = "duplicate"
)

// External protections: the planner shows the snapshot as protected, the worker skips its
// delete; never retried, never dead-lettered.
const (
	// Protected: AWS Backup or DLM manage the snapshot (aws:backup:*, aws:dlm:* tags).
	Protected = "protected"
	// InUse: an AMI uses the snapshot (the planner reads the account's AMIs; the worker
	// gets InvalidSnapshot.InUse).
	InUse = "in_use"
	// Locked: the snapshot is locked (EBS snapshot lock).
	Locked = "locked"
	// Shared: the snapshot is shared with other accounts (createVolumePermission).
	Shared = "shared"
)

// The worker's other skips and snoozes.
const (
	// VolumeGone: a create's volume no longer exists.
	VolumeGone = "volume_gone"
	// InstanceGone: an instance job's instance no longer exists.
	InstanceGone = "instance_gone"
	// SnapshotGone: a drill's snapshot no longer exists.
	SnapshotGone = "snapshot_gone"
	// ClockSkew: a delete waits because the worker's clock (real or --now) is more than
	// 5 minutes from AWS's; a snooze, never a dead letter.
	ClockSkew = "clock_skew"
	// NotManaged: consistency: application, and SSM cannot run a command on the
	// instance (no SSM agent, no AmazonSSMManagedInstanceCore, offline); with
	// on_pre_failure: skip, the job is skipped (not retried); else the snapshot is
	// crash-consistent (a fallback).
	NotManaged = "not_managed"
	// PreHookFailed: the pre hook failed or timed out: a crash-consistent snapshot (a
	// fallback), or with on_pre_failure: skip, no snapshot and the job is retried.
	PreHookFailed = "pre_hook_failed"
	// PostHookFailed: the post hook could not be sent or failed (the default scripts'
	// watchdog thaws anyway); logged at error level and counted in post_failures.
	PostHookFailed = "post_hook_failed"
)

// Disaster-recovery copies and the archive tier.
const (
	// CopyDue: a completed snapshot has no copy in a destination yet (plan).
	CopyDue = "copy_due"
	// Copied: the destination holds a copy of the snapshot (plan: nothing to do).
	Copied = "copied"
	// CopyNotKept: the destination's retention would not keep a copy of the snapshot, so
	// none is made (plan).
	CopyNotKept = "copy_not_kept"
	// CopyLimit: the destination region has 20 copies in progress (AWS's limit) or
	// answered ResourceLimitExceeded; the copy job waits (snooze), never a dead letter.
	CopyLimit = "copy_limit"
	// CopyPending: the copy is in progress; the job comes back to remove the share once
	// it has completed (snooze).
	CopyPending = "copy_pending"
	// ManagedKey: the snapshot is encrypted with the AWS-managed EBS key (alias/aws/ebs),
	// which cannot be shared with another account: no cross-account copy (dead letter,
	// before any call that would fail).
	ManagedKey = "managed_key"
	// SourceGone: the snapshot to copy no longer exists (skip).
	SourceGone = "source_gone"
	// Archive: older than archive.after, kept by retention now and 90 days later (plan).
	Archive = "archive"
	// Archived: the snapshot is in the archive tier already.
	Archived = "archived"
	// ArchiveCostsMore: retention would delete the snapshot within AWS's 90-day minimum
	// archive time, which would cost more than keeping it in the standard tier.
	ArchiveCostsMore = "archive_costs_more"
	// ArchiveLimit: the volume has 25 archived snapshots (AWS's limit).
	ArchiveLimit = "archive_limit"
	// Newest: the newest snapshot of its volume is never archived.
	Newest = "newest"
	// NotKept: the snapshot to archive is no longer kept by retention (worker skip).
	NotKept = "not_kept"
)

// Dead letters. Refusals of a delete all start with "refused_".
const (
	InvalidMessage = "invalid_message"
	UnknownAccount = "unknown_account"
	AccessDenied   = "access_denied"
	InvalidRequest = "invalid_request"
	// ExhaustedRetries: a retryable failure on the queue's last receive of the message
	// (the worker dead-letters it with the error), or a message the queue's own redrive
	// moved (a worker that crashed on it each time).
	ExhaustedRetries = "exhausted_retries"

	RefusedForeign        = "refused_foreign"
	RefusedUnmanaged      = "refused_unmanaged"
	RefusedPolicyMismatch = "refused_policy_mismatch"
	RefusedRetention      = "refused_retention"
	// RefusedForeignAccount: the credentials for the job's account belong to another
	// account (cloud.ForeignAccountError).
	RefusedForeignAccount = "refused_foreign_account"
	// RefusedNotDrill: a drill was about to delete a volume that, read right before, does
	// not carry its snapfleet:drill tag; no DeleteVolume call is made.
	RefusedNotDrill = "refused_not_drill"
)

// IsRefusal reports whether a dead-letter reason is a refusal (refused_*): a change that
// live state or the credentials do not allow, and that was not made.
func IsRefusal(code string) bool {
	const p = "refused_"
	return len(code) > len(p) && code[:len(p)] == p
}
