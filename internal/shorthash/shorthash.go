// Package shorthash abbreviates commit SHAs and digests for people to read.
package shorthash

// Lengths of an abbreviation.
const (
	// CommitLen is git's own abbreviation: tags, release notes, Slack.
	CommitLen = 7
	// LongLen keeps more apart: commit statuses, logs, cache and plan keys.
	LongLen = 12
)

// Commit abbreviates a commit SHA as git does (CommitLen characters).
func Commit(sha string) string { return Of(sha, CommitLen) }

// Long abbreviates a revision or digest to LongLen characters.
func Long(h string) string { return Of(h, LongLen) }

// Of returns the first n characters of h, or h when it is shorter.
func Of(h string, n int) string {
	if len(h) > n {
		return h[:n]
	}
	return h
}
