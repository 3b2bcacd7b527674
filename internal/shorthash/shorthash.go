// Package shorthash abbreviates commit SHAs and digests for people to read.
package shorthash

// Lengths of an abbreviation.
const (
	// Commit is git's own abbreviation: tags, release notes, Slack.
	Commit = 7
	// Long keeps more apart: commit statuses, logs, cache and plan keys.
	Long = 12
)

// Of returns the first n characters of h, or h when it is shorter.
func Of(h string, n int) string {
	if len(h) > n {
		return h[:n]
	}
	return h
}
