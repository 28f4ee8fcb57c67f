package config

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTagsFromInstance is the most instance tags a policy copies onto its snapshots: the
// job message carries them (job.MaxInstanceTags).
const MaxTagsFromInstance = 8

// validateTagsFromInstance checks tags_from_instance: at most MaxTagsFromInstance distinct
// tag keys, none of snapfleet's own or AWS's reserved ones.
func (p Policy) validateTagsFromInstance(key string) error {
	key += ".tags_from_instance"
	if len(p.TagsFromInstance) > MaxTagsFromInstance {
		return fmt.Errorf("%s: %d keys, at most %d", key, len(p.TagsFromInstance), MaxTagsFromInstance)
	}
	seen := map[string]bool{}
	for i, k := range p.TagsFromInstance {
		switch {
		case k == "" || utf8.RuneCountInString(k) > 128 || !utf8.ValidString(k):
			return fmt.Errorf("%s[%d]: %q is not a tag key (1 to 128 characters)", key, i, k)
		case strings.HasPrefix(k, ReservedTagPrefix) || strings.HasPrefix(k, "aws:"):
			return fmt.Errorf("%s[%d]: %q: the %s and aws: prefixes are not copied", key, i, k, ReservedTagPrefix)
		case seen[k]:
			return fmt.Errorf("%s[%d]: duplicate key %q", key, i, k)
		}
		seen[k] = true
	}
	return nil
}
