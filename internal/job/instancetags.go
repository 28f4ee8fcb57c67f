package job

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of a create job's InstanceTags (a policy's tags_from_instance, copied from the
// instance onto its snapshots), so that a message with every other field at its longest
// stays under MaxSize: at most MaxInstanceTags tags whose keys and values add up to at
// most MaxInstanceTagBytes bytes (each key at most 128 characters, each value at most
// 256, as AWS takes them).
const (
	MaxInstanceTags     = 8
	MaxInstanceTagBytes = 300
)

// InstanceTags picks the tags named by keys from an instance's tags, in key order, as long
// as they fit the bounds of a job's InstanceTags; ok is false when some had to be left out
// (or were not valid tags). Keys the instance does not carry are not an error.
func InstanceTags(tags map[string]string, keys []string) (picked map[string]string, ok bool) {
	ok = true
	size := 0
	for _, k := range slices.Sorted(slices.Values(keys)) {
		v, has := tags[k]
		if !has {
			continue
		}
		if len(picked) == MaxInstanceTags || size+len(k)+len(v) > MaxInstanceTagBytes || checkInstanceTag(k, v) != nil {
			ok = false
			continue
		}
		if picked == nil {
			picked = map[string]string{}
		}
		picked[k] = v
		size += len(k) + len(v)
	}
	return picked, ok
}

// checkInstanceTag says what is wrong with one instance tag a job carries.
func checkInstanceTag(k, v string) error {
	switch {
	case k == "" || utf8.RuneCountInString(k) > 128:
		return fmt.Errorf("key %q is empty or longer than 128 characters", k)
	case strings.HasPrefix(k, "snapfleet:") || strings.HasPrefix(k, "aws:"):
		return fmt.Errorf("key %q is reserved", k)
	case !utf8.ValidString(k) || !utf8.ValidString(v) || utf8.RuneCountInString(v) > 256:
		return fmt.Errorf("tag %q is not valid UTF-8 or its value is longer than 256 characters", k)
	case strings.IndexFunc(k+v, unicode.IsControl) >= 0:
		return fmt.Errorf("tag %q has a control character", k)
	}
	return nil
}

// checkInstanceTags checks a job's InstanceTags against the bounds.
func checkInstanceTags(tags map[string]string) error {
	if len(tags) > MaxInstanceTags {
		return fmt.Errorf("%w: instance_tags: %d tags, over %d", ErrInvalid, len(tags), MaxInstanceTags)
	}
	size := 0
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if err := checkInstanceTag(k, tags[k]); err != nil {
			return fmt.Errorf("%w: instance_tags: %v", ErrInvalid, err)
		}
		size += len(k) + len(tags[k])
	}
	if size > MaxInstanceTagBytes {
		return fmt.Errorf("%w: instance_tags: %d bytes of keys and values, over %d", ErrInvalid, size, MaxInstanceTagBytes)
	}
	return nil
}
